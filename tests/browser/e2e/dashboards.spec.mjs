// Dashboards end to end, in real Chromium: a blueprint, entities, a scorecard, an action and a
// dashboard with one widget of each kind are created through the API; the dashboard page shows
// every widget (numbers, SVG pie, table, markdown, line chart, scorecard levels, action card,
// runs, an iframe served by a tiny local server the page's CSP lets in) with no CSP violation,
// and one misconfigured widget explains itself. Identifiers differ from the other specs' (all
// run against one server).
import { test, expect } from '@playwright/test';
import { api, shot, signIn, sleep, token } from './lib.mjs';
import http from 'node:http';

// The page the iframe widget embeds.
function startFrameServer() {
  return new Promise((resolve) => {
    const server = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>status</title><h1 id="framed">All systems go</h1>');
    });
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

test('a dashboard renders one widget of each kind', async ({ page }) => {
  const cspErrors = [];
  page.on('console', (m) => { if (/Content[- ]Security[- ]Policy/i.test(m.text())) cspErrors.push(m.text()); });
  page.on('pageerror', (e) => cspErrors.push(String(e)));
  const frames = await startFrameServer();
  const frameUrl = `http://127.0.0.1:${frames.address().port}/status`;
  const bearer = await token();

  await api(bearer, 'POST', '/v1/blueprints', { identifier: 'dash_app', title: 'Dash app',
    schema: { properties: { tier: { type: 'string', title: 'Tier' }, cost: { type: 'number', title: 'Cost' } } } });
  const apps = [['web', 'gold', 30], ['api', 'gold', 20], ['batch', 'silver', 5], ['cron', 'bronze', 1]];
  for (const [id, tier, cost] of apps) {
    await api(bearer, 'POST', '/v1/blueprints/dash_app/entities', { identifier: id, title: `App ${id}`, properties: { tier, cost } });
  }
  for (const cost of [35, 40]) {
    await api(bearer, 'PATCH', '/v1/blueprints/dash_app/entities/web', { properties: { cost } });
  }
  await api(bearer, 'POST', '/v1/blueprints/dash_app/scorecards', { identifier: 'costly', title: 'Costly', rules: [
    { identifier: 'some', title: 'some', level: 'Bronze', query: { combinator: 'and', conditions: [{ property: 'cost', operator: '>', value: 2 }] } },
    { identifier: 'more', title: 'more', level: 'Silver', query: { combinator: 'and', conditions: [{ property: 'cost', operator: '>', value: 10 }] } },
  ] });
  await api(bearer, 'POST', '/v1/actions', { identifier: 'dash_restart', title: 'Restart an app',
    trigger: { type: 'self-service', operation: 'CREATE', blueprintIdentifier: 'dash_app',
      userInputs: { properties: { name: { type: 'string', title: 'Name' } }, required: ['name'] } },
    invocationMethod: { type: 'UPSERT_ENTITY', blueprintIdentifier: 'dash_app', mapping: { identifier: '{{ .inputs.name }}' } } });
  // The scorecard's results are computed by a job.
  for (let i = 0; i < 200; i++) {
    const e = await api(bearer, 'GET', '/v1/blueprints/dash_app/entities/cron');
    if (e.entity.scorecards?.costly?.level) break;
    await sleep(100);
  }

  const gold = { combinator: 'and', rules: [{ property: 'tier', operator: '=', value: 'gold' }] };
  const widgets = [
    { id: 'w-count', type: 'entities-number-chart', title: 'Gold apps', blueprint: 'dash_app', chartType: 'countEntities', func: 'count', dataset: gold },
    { id: 'w-sum', type: 'entities-number-chart', title: 'Total cost', blueprint: 'dash_app', chartType: 'aggregateByProperty', func: 'sum', property: 'cost', unit: '$' },
    { id: 'w-pie', type: 'entities-pie-chart', title: 'By tier', blueprint: 'dash_app', property: 'tier' },
    { id: 'w-table', type: 'table-entities-explorer', title: 'Gold apps table', blueprint: 'dash_app', dataset: gold },
    { id: 'w-md', type: 'markdown', title: 'Notes', markdown: '## On call\n\nPage **#ops** first.' },
    { id: 'w-line', type: 'line-chart', title: 'Web cost', chartType: 'propertiesValueHistory', blueprint: 'dash_app', entity: 'web', properties: ['cost'] },
    { id: 'w-levels', type: 'scorecard-overview', title: 'Costly levels', blueprint: 'dash_app', scorecard: 'costly' },
    { id: 'w-action', type: 'action-card-widget', title: 'Actions', actions: [{ action: 'dash_restart' }] },
    { id: 'w-runs', type: 'runs-table', title: 'My runs' },
    { id: 'w-frame', type: 'iframe-widget', title: 'Status page', url: frameUrl },
    { id: 'w-bad', type: 'entities-pie-chart', title: 'Broken', blueprint: 'dash_app', property: 'colour' },
  ];
  const layout = [{ height: 400, columns: widgets.map((w) => ({ id: w.id, size: w.id === 'w-table' ? 12 : 6 })) }];
  await api(bearer, 'POST', '/v1/pages', { identifier: 'dash_ops', type: 'dashboard', title: 'Operations',
    widgets: [{ id: 'grid', type: 'dashboard-widget', layout, widgets }] });

  await signIn(page);

  await page.locator('header nav').getByRole('link', { name: 'Dashboards' }).click();
  await page.locator('.dash-nav').getByRole('link', { name: 'Operations' }).click();
  await expect(page.getByRole('heading', { name: 'Operations', level: 1 })).toBeVisible();
  const w = (id) => page.locator(`[data-widget="${id}"]`);
  await expect(w('w-count').locator('.big-number')).toHaveText('2');
  await expect(w('w-sum').locator('.big-number')).toHaveText('$ 66');
  await expect(w('w-pie').locator('svg.pie path')).toHaveCount(3);
  await expect(w('w-pie').locator('svg.pie')).toBeVisible();
  await expect(w('w-pie').locator('.legend')).toContainText('gold');
  await expect(w('w-table').locator('tbody tr')).toHaveCount(2);
  await expect(w('w-table').getByRole('link', { name: 'web' })).toBeVisible();
  await expect(w('w-md').getByRole('heading', { name: 'On call' })).toBeVisible();
  await expect(w('w-line').locator('polyline')).toBeVisible();
  await expect(w('w-line').locator('circle')).toHaveCount(3);
  await expect(w('w-levels').locator('svg.bars rect')).toHaveCount(4);
  await expect(w('w-levels')).toContainText('4 entities scored');
  await expect(w('w-action').getByRole('link', { name: 'Restart an app' })).toBeVisible();
  await expect(w('w-runs')).toBeVisible();
  await expect(page.frameLocator('[data-widget="w-frame"] iframe').locator('#framed')).toHaveText('All systems go');
  await expect(w('w-bad').getByRole('alert')).toContainText('has no stored property "colour"');
  await shot(page, '13-dashboard');

  // The action card leads to the run form.
  await w('w-action').getByRole('link', { name: 'Restart an app' }).click();
  await expect(page).toHaveURL(/\/ui\/self-service\/dash_restart/);

  // Home: no home page yet, so the catalog at a glance.
  await page.locator('header nav').getByRole('link', { name: 'Home' }).click();
  await expect(page.locator('#home-counts')).toContainText('Dash app');
  frames.close();
  expect(cspErrors, cspErrors.join('\n')).toEqual([]);
});
