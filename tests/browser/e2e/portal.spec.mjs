// The web UI end to end, in real Chromium: sign in, model a blueprint in the builder, create and
// edit entities, filter and sort the catalog, read an entity's page and history, export HCL,
// open an integration's event log (shipped through the API as Ocean does) and filter it, try its
// mapping in the playground, open a webhook's page, sign out. Each step asserts what the page shows; screenshots go to SCREENSHOT_DIR.
import { test, expect } from '@playwright/test';
import fs from 'node:fs';
import { CLIENT_ID, CLIENT_SECRET, EMAIL, PASSWORD, shot } from './lib.mjs';

const OCEAN_UA = 'port-ocean/github/0.1.0/browser-int/exporter';

// An integration with a mapping, a kind example and log lines, created through the API with
// Ocean's calls and User-Agent.
async function oceanIntegration(request) {
  const auth = await request.post('/v1/auth/access_token', { data: { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET } });
  expect(auth.ok(), await auth.text()).toBeTruthy();
  const headers = { Authorization: `Bearer ${(await auth.json()).accessToken}`, 'User-Agent': OCEAN_UA };
  const call = async (method, url, data) => {
    const res = await request.fetch(url, { method, headers, data });
    expect(res.ok(), `${method} ${url}: ${await res.text()}`).toBeTruthy();
  };
  await call('POST', '/v1/integration', {
    installationId: 'browser-int', installationAppType: 'github', version: '0.1.0', changelogDestination: {},
    config: { resources: [{ kind: 'repo', selector: { query: '.archived | not' },
      port: { entity: { mappings: { identifier: '.name', title: '.full_name', blueprint: '"service"',
        properties: { language: '.lang', cpu: '.cores * 2' } } } } }] },
  });
  await call('POST', '/v1/integration/browser-int/kinds/repo/examples',
    { examples: [{ name: 'billing', full_name: 'acme/billing', lang: 'go', cores: 3, archived: false }] });
  await call('POST', '/v1/integration/browser-int/logs', { logs: [
    { message: 'fetching repositories', level: 'INFO', timestamp: '2024-11-10T08:00:00.000000Z' },
    { message: 'GitHub answered 502 for acme/cart', level: 'ERROR', timestamp: '2024-11-10T08:01:00.000000Z' },
    { message: 'retrying in 5 s', level: 'WARNING', timestamp: '2024-11-10T08:02:00.000000Z' },
  ] });  // A custom webhook (read-only on its data-source page).
  await call('POST', '/v1/webhooks', { identifier: 'browser-hook', title: 'Browser hook', enabled: true,
    mappings: [{ blueprint: 'service', filter: 'true',
      entity: { identifier: '.body.name', title: '.body.name', properties: {} } }] });
}

async function saveJson(page, json) {
  await page.locator('textarea#json').fill(JSON.stringify(json, null, 2));
  await page.getByRole('button', { name: 'Save' }).click();
}

test('a platform engineer models, fills, browses and exports the catalog', async ({ page, request }) => {
  const cspErrors = [];
  page.on('console', (m) => { if (/Content[- ]Security[- ]Policy/i.test(m.text())) cspErrors.push(m.text()); });
  page.on('pageerror', (e) => cspErrors.push(String(e)));

  // Sign in (the catalog sends us to the sign-in page first).
  await page.goto('/ui/catalog');
  await expect(page).toHaveURL(/\/ui\/signin/);
  await expect(page.getByRole('heading', { name: 'Sign in to Portolan' })).toBeVisible();
  await shot(page, '01-signin');
  await page.getByLabel('E-mail').fill(EMAIL);
  await page.getByLabel('Password').fill('wrong password entirely');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toHaveText('Wrong e-mail or password.');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('heading', { name: 'Catalog' })).toBeVisible();
  await expect(page.locator('.me')).toHaveText(EMAIL);

  // Builder: a blueprint with a mistake is refused at the field, then created.
  await page.locator('header nav').getByRole('link', { name: 'Builder' }).click();
  await page.getByRole('link', { name: '+ New blueprint' }).click();
  const blueprint = {
    identifier: 'service', title: 'Service',
    schema: { properties: {
      language: { type: 'string', enum: ['go', 'rust'], enumColors: { go: 'blue', rust: 'red' } },
      cpu: { type: 'integer' },
      docs: { type: 'string', format: 'url' },
    }, required: ['language'] },
  };
  await saveJson(page, blueprint);
  await expect(page.locator('[data-path="schema.properties.cpu.type"]')).toBeVisible();
  blueprint.schema.properties.cpu.type = 'number';
  await saveJson(page, blueprint);
  await expect(page.locator('#blueprints')).toContainText('service');
  await expect(page.locator('img.graph')).toBeVisible();
  await shot(page, '02-builder');

  // Entities: create four through the editor, then edit one.
  for (const [id, lang, cpu] of [['cart', 'go', 4], ['auth', 'rust', 1], ['search', 'go', 8], ['mail', 'rust', 2]]) {
    await page.goto('/ui/catalog/service');
    await page.getByRole('link', { name: '+ New Service' }).click();
    await saveJson(page, { identifier: id, title: `${id} service`, properties: { language: lang, cpu, docs: `https://docs.example/${id}` } });
    await expect(page.getByRole('heading', { level: 1 })).toHaveText(`${id} service`);
  }
  await page.getByRole('link', { name: 'Edit', exact: true }).click();
  await saveJson(page, { identifier: 'mail', title: 'Mail service', properties: { language: 'rust', cpu: 99 } });
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Mail service');
  await expect(page.locator('[data-property="cpu"] td')).toHaveText('99');

  // Catalog: filter (cpu > 3), then sort by cpu, descending.
  await page.goto('/ui/catalog/service');
  const rows = page.locator('#catalog-table tbody tr');
  await expect(rows).toHaveCount(4);
  await expect(page.locator('.enum-blue').first()).toHaveText('go');
  await page.locator('select[name="fp"]').selectOption('cpu');
  await page.locator('select[name="fo"]').selectOption('>');
  await page.locator('input[name="fv"]').fill('3');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(rows).toHaveCount(3);
  await expect(page).toHaveURL(/fp=cpu/);
  await page.locator('th[data-column="cpu"] a.sort').click();
  await expect(page.locator('th[data-column="cpu"] a.sort')).toContainText('▲');
  await page.locator('th[data-column="cpu"] a.sort').click();
  await expect(page.locator('th[data-column="cpu"] a.sort')).toContainText('▼');
  await expect(rows.first().locator('td').first()).toHaveText('mail');
  await expect(rows.nth(1).locator('td').first()).toHaveText('search');
  await expect(rows.nth(2).locator('td').first()).toHaveText('cart');
  await shot(page, '03-catalog');

  // Entity page and its history.
  await page.getByRole('link', { name: 'cart', exact: true }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('cart service');
  await expect(page.locator('[data-property="docs"] a')).toHaveAttribute('href', 'https://docs.example/cart');
  await expect(page.locator('#history')).toContainText('CREATE');
  await page.goto('/ui/entities/service/mail');
  await expect(page.locator('#history')).toContainText('UPDATE');
  await expect(page.locator('#history ins').first()).toBeVisible();
  await expect(page.locator('#history')).toContainText('99');
  await shot(page, '04-entity');

  // Audit log.
  await page.locator('header nav').getByRole('link', { name: 'Audit log' }).click();
  await expect(page.locator('#audit')).toContainText(`${EMAIL} (UI)`);
  await shot(page, '05-audit');

  // Data sources: an integration's event log, filtered by level; its mapping in the playground.
  await oceanIntegration(request);
  await page.locator('header nav').getByRole('link', { name: 'Data sources' }).click();
  const integration = page.locator('#integrations tr[data-integration="browser-int"]');
  await expect(integration).toContainText('github');
  await expect(integration).toContainText('0.1.0');
  await expect(page.locator('#webhooks')).toBeVisible();
  await shot(page, '07-data-sources');
  await integration.getByRole('link', { name: 'browser-int' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('browser-int');
  const log = page.locator('#log tbody tr');
  await expect(log).toHaveCount(3);
  await expect(log.first()).toContainText('retrying in 5 s');
  await page.locator('#log-filter input[name="level"][value="ERROR"]').check();
  await page.getByRole('button', { name: 'Filter' }).click();
  await expect(page).toHaveURL(/level=ERROR/);
  await expect(log).toHaveCount(1);
  await expect(log.first()).toHaveAttribute('data-level', 'ERROR');
  await expect(log.first()).toContainText('GitHub answered 502 for acme/cart');
  await expect(page.locator('#log')).not.toContainText('fetching repositories');
  await shot(page, '08-event-log');
  await page.getByRole('link', { name: 'Mapping playground' }).click();
  await expect(page.locator('textarea[name="item"]')).toHaveValue(/acme\/billing/);
  await page.getByRole('button', { name: 'Run' }).click();
  await expect(page.locator('#playground-result tr[data-path="properties.cpu"]')).toContainText('6');
  await expect(page.locator('#playground-result tr[data-path="identifier"]')).toContainText('"billing"');
  await expect(page).toHaveURL(/\/playground$/);

  // A webhook's page: configuration, mappings and its (empty) event log.
  await page.locator('header nav').getByRole('link', { name: 'Data sources' }).click();
  const hook = page.locator('#webhooks tr[data-webhook="browser-hook"]');
  await expect(hook).toContainText('enabled');
  await expect(hook).toContainText('/v1/ingest/');
  await hook.getByRole('link', { name: 'browser-hook' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Browser hook');
  await expect(page.locator('#mappings')).toContainText('.body.name');
  await expect(page.locator('#secret-state')).toHaveText('none');
  await expect(page.locator('#log-empty')).toBeVisible();
  await shot(page, '09-webhook');

  // Export HCL.
  await page.locator('header nav').getByRole('link', { name: 'Export' }).click();
  await page.getByLabel('Terraform HCL (port_blueprint, port_entity)').check();
  await shot(page, '06-export');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download' }).click(),
  ]);
  const hcl = fs.readFileSync(await download.path(), 'utf8');
  expect(download.suggestedFilename()).toBe('portolan-export.tf');
  expect(hcl).toContain('resource "port_blueprint" "service" {');
  expect(hcl).toContain('resource "port_entity" "service_cart" {');

  // Sign out: the catalog needs signing in again.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByRole('heading', { name: 'Sign in to Portolan' })).toBeVisible();
  await page.goto('/ui/catalog');
  await expect(page).toHaveURL(/\/ui\/signin/);

  expect(cspErrors, 'no Content-Security-Policy violations or script errors').toEqual([]);
});
