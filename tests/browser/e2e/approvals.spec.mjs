// Approvals in real Chromium: runs of an action with requiredApproval wait; the admin (an
// approver by the default `approve` grant) opens the approvals inbox, declines one run with a
// note and approves the other; the declined run ends DECLINED without running, the approved
// one runs (an UPSERT_ENTITY invocation) and its page follows it to SUCCESS.
// Identifiers differ from the other specs' (all run against one server).
import { test, expect } from '@playwright/test';
import { BASE, api, token, signIn, shot } from './lib.mjs';

test('an approver opens the inbox, approves, and the run proceeds', async ({ page }) => {
  const errors = [];
  page.on('console', (m) => { if (/Content[- ]Security[- ]Policy/i.test(m.text())) errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));

  const bearer = await token();
  await api(bearer, 'POST', '/v1/blueprints', {
    identifier: 'release', title: 'Release', schema: { properties: { version: { type: 'string' } } },
  });
  await api(bearer, 'POST', '/v1/actions', {
    identifier: 'cut_release', title: 'Cut release',
    trigger: {
      type: 'self-service', operation: 'CREATE', blueprintIdentifier: 'release',
      userInputs: { properties: { version: { type: 'string', title: 'Version' } }, required: ['version'] },
    },
    invocationMethod: {
      type: 'UPSERT_ENTITY', blueprintIdentifier: 'release',
      mapping: { identifier: '{{ "r-" + .inputs.version }}', title: '{{ .inputs.version }}', properties: { version: '{{ .inputs.version }}' } },
    },
    requiredApproval: { type: 'ANY' },
  });
  const start = async (version) => {
    const { run } = await api(bearer, 'POST', '/v1/actions/cut_release/runs', { properties: { version } });
    expect(run.status).toBe('WAITING_FOR_APPROVAL');
    return run.id;
  };
  const doomed = await start('0.9');
  const wanted = await start('1.0');

  await signIn(page);
  await page.getByRole('navigation').getByRole('link', { name: 'Approvals' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Approvals');
  const card = (id) => page.locator(`section.approval[data-run="${id}"]`);
  await expect(card(wanted)).toContainText('Cut release');
  await expect(card(wanted)).toContainText('1.0');
  await expect(card(wanted)).toContainText('Needs the approval of any one of: admin@example.com');
  await shot(page, 'approvals-inbox');

  // Decline one with a note: its page says so, and it never ran.
  await card(doomed).getByLabel('Note').fill('wrong version');
  await card(doomed).getByRole('button', { name: 'Decline' }).click();
  await expect(page).toHaveURL(new RegExp(`/ui/runs/${doomed}$`));
  await expect(page.locator('#run-body')).toHaveAttribute('data-status', 'DECLINED');
  await expect(page.locator('#run-body')).toContainText('Declined by admin@example.com: wrong version');

  // Approve the other: the run proceeds and its page follows it to SUCCESS.
  await page.goto('/ui/approvals');
  await expect(card(doomed)).toHaveCount(0);
  await card(wanted).getByLabel('Note').fill('ship it');
  await card(wanted).getByRole('button', { name: 'Approve' }).click();
  await expect(page).toHaveURL(new RegExp(`/ui/runs/${wanted}$`));
  await expect(page.locator('#run-body')).toHaveAttribute('data-status', 'SUCCESS', { timeout: 20_000 });
  await expect(page.locator('#run-body')).toContainText('admin@example.com approved the run: ship it');
  await shot(page, 'approvals-approved-run');
  const { entity } = await api(bearer, 'GET', '/v1/blueprints/release/entities/r-1.0');
  expect(entity.properties.version).toBe('1.0');
  const res = await fetch(`${BASE}/v1/blueprints/release/entities/r-0.9`, {
    headers: { Authorization: `Bearer ${bearer}` },
  });
  expect(res.status, 'the declined run wrote nothing').toBe(404);

  await page.goto('/ui/approvals');
  await expect(page.locator('#approvals-empty')).toBeVisible();
  expect(errors).toEqual([]);
});
