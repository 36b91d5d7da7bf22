// Permissions in real Chromium: the admin opens a blueprint's permissions from the builder,
// takes reading away from members except for the entities their teams own, and saves; a member
// invited into one team then signs in and the catalog shows only that team's entity.
// Identifiers differ from the other specs' (all run against one server).
import { test, expect } from '@playwright/test';
import { api, token, signIn, shot } from './lib.mjs';

const MEMBER = 'perm-member@example.com';

test('an admin scopes reading to owning teams, and a member sees only his team\'s entities', async ({ page, browser }) => {
  const errors = [];
  page.on('console', (m) => { if (/Content[- ]Security[- ]Policy/i.test(m.text())) errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));

  const bearer = await token();
  await api(bearer, 'POST', '/v1/teams', { name: 'perm-ops' });
  await api(bearer, 'POST', '/v1/teams', { name: 'perm-dev' });
  const { invitation } = await api(bearer, 'POST', '/v1/users/invite', {
    invitee: { email: MEMBER, roles: ['Member'], teams: ['perm-ops'] },
  });
  await api(bearer, 'POST', '/v1/blueprints', {
    identifier: 'perm_svc', title: 'Guarded service', schema: { properties: { note: { type: 'string' } } },
  });
  await api(bearer, 'POST', '/v1/blueprints/perm_svc/entities', { identifier: 'perm-ours', title: 'Ours', team: ['perm-ops'] });
  await api(bearer, 'POST', '/v1/blueprints/perm_svc/entities', { identifier: 'perm-theirs', title: 'Theirs', team: ['perm-dev'] });

  await signIn(page);
  await page.goto('/ui/builder');
  await page.locator('#blueprints tr', { hasText: 'perm_svc' }).getByRole('link', { name: 'Permissions' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Permissions of Guarded service');
  const read = page.locator('fieldset[data-key="entities.read"]');
  await expect(read.getByLabel('Member', { exact: true })).toBeChecked();
  await read.getByLabel('Member', { exact: true }).uncheck();
  await read.getByLabel(/Owned by team/).check();
  // A per-property grant: the ops team may change `note` (folded until opened).
  await page.getByText('Per property and relation').click();
  await page.locator('fieldset[data-key="entities.updateProperties.note"] select').selectOption(['perm-ops']);
  await page.getByRole('button', { name: 'Save permissions' }).click();
  await expect(page.locator('#saved')).toHaveText('Saved.');
  await expect(read.getByLabel('Member', { exact: true })).not.toBeChecked();
  await expect(read.getByLabel(/Owned by team/)).toBeChecked();
  await shot(page, '32-blueprint-permissions');
  const { permissions } = await api(bearer, 'GET', '/v1/blueprints/perm_svc/permissions');
  expect(permissions.entities.read).toEqual({ roles: ['Admin', 'perm_svc-moderator'], users: [], teams: [], ownedByTeam: true });
  expect(permissions.entities.updateProperties.note.teams).toEqual(['perm-ops']);

  // The member (invited into perm-ops) signs in for the first time and sees only his team's entity.
  const other = await browser.newContext();
  const member = await other.newPage();
  await member.goto(invitation.path);
  await member.getByLabel('Password (at least 12 characters)').fill('member-password-123');
  await member.getByLabel('Repeat it').fill('member-password-123');
  await member.getByRole('button', { name: 'Set password and sign in' }).click();
  await expect(member.locator('.me')).toHaveText(MEMBER);
  await member.goto('/ui/catalog/perm_svc');
  await expect(member.getByRole('link', { name: 'Ours' })).toBeVisible();
  await expect(member.getByText('Theirs')).toHaveCount(0);
  // He sees the permissions, read-only.
  await member.goto('/ui/builder/perm_svc/permissions');
  await expect(member.locator('#read-only')).toContainText('moderators change these');
  await expect(member.getByRole('button', { name: 'Save permissions' })).toHaveCount(0);
  await other.close();
  expect(errors).toEqual([]);
});
