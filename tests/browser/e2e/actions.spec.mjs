// Self-service actions end to end, in real Chromium: a DAY-2 action (created through the API)
// is offered on the entities its condition matches; its form shows a conditional input once the
// jq `visible` says so (re-rendered by htmx on change), picks an entity by searching, and starts
// the run; the run page follows the run live (polling) while a tiny backend, called by the
// server's webhook, reports logs, a summary and SUCCESS through the API; "My runs" lists it.
// Identifiers differ from portal.spec.mjs's (both run against one server).
import { test, expect } from '@playwright/test';
import { api, shot, signIn, sleep, token } from './lib.mjs';
import http from 'node:http';


// The action's backend: accepts the webhook at once, then reports on the run through the API as
// a real backend does — a log line, another, the summary and link, and the final log that ends it.
function startBackend(bearer, seen) {
  return new Promise((resolve) => {
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', async () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"accepted": true}');
        const p = JSON.parse(body);
        seen.push(p);
        const run = `/v1/actions/runs/${encodeURIComponent(p.runId)}`;
        try {
          await sleep(1500);
          await api(bearer, 'POST', `${run}/logs`, { message: `deploying ${p.entity} to ${p.env}` });
          await sleep(1500);
          await api(bearer, 'PATCH', run, { summary: `Deployed **${p.entity}** to ${p.env}`, link: ['https://ci.example/runs/42'] });
          await api(bearer, 'POST', `${run}/logs`, { message: 'all replicas healthy', terminationStatus: 'SUCCESS' });
        } catch (e) {
          seen.push({ error: String(e) });
        }
      });
    });
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

test('a developer runs a day-2 action from an entity page and follows the run', async ({ page }) => {
  const cspErrors = [];
  page.on('console', (m) => { if (/Content[- ]Security[- ]Policy/i.test(m.text())) cspErrors.push(m.text()); });
  page.on('pageerror', (e) => cspErrors.push(String(e)));

  const bearer = await token();
  const seen = [];
  const backend = await startBackend(bearer, seen);
  try {
    const hook = `http://127.0.0.1:${backend.address().port}/deploy`;
    await api(bearer, 'POST', '/v1/blueprints', { identifier: 'env', title: 'Environment', schema: { properties: {} } });
    await api(bearer, 'POST', '/v1/blueprints', {
      identifier: 'deployable', title: 'Deployable',
      schema: { properties: { language: { type: 'string', enum: ['go', 'rust'] } } },
    });
    for (const [id, title] of [['prod', 'Production'], ['staging', 'Staging']]) {
      await api(bearer, 'POST', '/v1/blueprints/env/entities', { identifier: id, title });
    }
    for (const [id, language] of [['billing', 'rust'], ['gateway', 'go']]) {
      await api(bearer, 'POST', '/v1/blueprints/deployable/entities', { identifier: id, title: `${id} app`, properties: { language } });
    }
    await api(bearer, 'POST', '/v1/actions', {
      identifier: 'deploy_app', title: 'Deploy', icon: 'Rocket', description: 'Roll the app out to an environment',
      trigger: {
        type: 'self-service', operation: 'DAY-2', blueprintIdentifier: 'deployable',
        executeActionButtonText: 'Start deploy',
        condition: { type: 'SEARCH', combinator: 'and', rules: [{ property: 'language', operator: '=', value: 'rust' }] },
        userInputs: {
          properties: {
            language: { type: 'string', title: 'Language', enum: ['go', 'rust'], default: 'go' },
            notes: { type: 'string', format: 'multi-line', title: 'Release notes', visible: { jqQuery: '.form.language == "rust"' } },
            target: { type: 'string', format: 'entity', blueprint: 'env', title: 'Environment' },
          },
          required: ['language', 'target'],
          order: ['language', 'notes', 'target'],
        },
      },
      invocationMethod: {
        type: 'WEBHOOK', url: hook, synchronized: false,
        body: { runId: '{{ .run.id }}', entity: '{{ .entity.identifier }}', env: '{{ .inputs.target }}', notes: '{{ .inputs.notes }}' },
      },
    });

    // Sign in.
    await signIn(page);

    // The action is offered only where its condition (language = rust) holds.
    await page.goto('/ui/entities/deployable/gateway');
    await expect(page.getByRole('heading', { level: 1 })).toHaveText('gateway app');
    await expect(page.locator('#entity-actions')).toHaveCount(0);
    await page.goto('/ui/entities/deployable/billing');
    await page.locator('#entity-actions').getByRole('link', { name: 'Deploy' }).click();

    // The form: `notes` appears once language is rust.
    await expect(page.getByRole('heading', { level: 1 })).toContainText('Deploy');
    await expect(page.locator('#run-entity')).toHaveText('billing');
    await expect(page.locator('#field-notes')).toHaveCount(0);
    await page.locator('#in-language').selectOption({ label: 'rust' });
    await expect(page.locator('#field-notes')).toBeVisible();
    await page.locator('#in-notes').fill('First rollout\nwith feeling');

    // The entity picker: search, then choose.
    const options = page.locator('#in-target option');
    await expect(page.locator('#in-target option[value="prod"]')).toHaveCount(1);
    await page.locator('#q-target').fill('stag');
    await expect(page.locator('#in-target option[value="prod"]')).toHaveCount(0);
    await expect(options.filter({ hasText: 'Staging (staging)' })).toHaveCount(1);
    await page.locator('#in-target').selectOption('staging');
    await expect(page.locator('#in-target')).toHaveValue('staging');
    await expect(page.locator('#in-notes')).toHaveValue('First rollout\nwith feeling');
    await shot(page, '10-run-form');

    // Start it: the run page follows the run until it ends.
    await page.getByRole('button', { name: 'Start deploy' }).click();
    await expect(page).toHaveURL(/\/ui\/runs\/r_/);
    const body = page.locator('#run-body');
    await expect(page.locator('#run-inputs [data-input="target"]')).toContainText('staging');
    await expect(page.locator('#run-logs')).toContainText('deploying billing to staging');
    await expect(body).toHaveAttribute('data-status', 'SUCCESS', { timeout: 20_000 });
    await expect(page.locator('#run-logs')).toContainText('all replicas healthy');
    await expect(page.locator('#run-summary strong')).toHaveText('billing');
    await expect(page.locator('#run-links a')).toHaveAttribute('href', 'https://ci.example/runs/42');
    await expect(page.locator('#run-trace')).toContainText(hook);
    await expect(body).not.toHaveAttribute('hx-trigger', /every/);
    await shot(page, '11-run');
    expect(seen.filter((s) => s.error), JSON.stringify(seen)).toEqual([]);
    expect(seen[0].notes).toBe('First rollout\nwith feeling');

    // My runs lists it; so does the entity page.
    await page.locator('header nav').getByRole('link', { name: 'My runs' }).click();
    await expect(page.locator('#runs tbody tr').first()).toContainText('Deploy');
    await expect(page.locator('#runs tbody tr').first()).toContainText('SUCCESS');
    await page.goto('/ui/entities/deployable/billing');
    await expect(page.locator('#runs')).toContainText('SUCCESS');
    await page.locator('header nav').getByRole('link', { name: 'Self-service' }).click();
    await expect(page.locator('#actions')).toContainText('Deploy');
    await shot(page, '12-self-service');
  } finally {
    backend.close();
  }
  expect(cspErrors, 'no Content-Security-Policy violations or script errors').toEqual([]);
});
