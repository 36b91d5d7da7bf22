// SAML 2.0 sign-in end to end, in real Chromium, against a real SAML identity provider library:
// crates/portolan-server/tests/saml_idp/idp.py (PyPI's pysaml2, signing with xmlsec1), started
// here with Portolan's service provider metadata. Covered: an admin sets SAML up on the
// organization page from the IdP's metadata URL; a person signs in from the sign-in page through
// the IdP's form and pysaml2's own auto-posting page (cross-site, so Portolan posts the answer
// again from its own site), created just in time with a team from the groups attribute; the
// IdP's refusal shown as a page in words; a tampered assertion refused. Settings are restored
// at the end (the other specs sign in with a password).
import { test, expect } from '@playwright/test';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { BASE, api as libApi, shot, signIn, token } from './lib.mjs';

const PYTHON = process.env.PORTOLAN_SAML_PYTHON;
const IDP_SCRIPT = path.resolve('../../crates/portolan-server/tests/saml_idp/idp.py');

async function api(method, url, data) {
  return libApi(await token(), method, url, data);
}

async function startIdp(org) {
  const md = await fetch(`${BASE}/ui/sso/saml/metadata?org=${encodeURIComponent(org)}`);
  expect(md.ok).toBeTruthy();
  const file = path.join(os.tmpdir(), `portolan-sp-${process.pid}.xml`);
  fs.writeFileSync(file, await md.text());
  const child = spawn(PYTHON, [IDP_SCRIPT, '--sp-metadata', file], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the SAML IdP exited (${code})`)));
  });
  const base = line.replace(/^ready /, '').trim();
  const control = async (b) => {
    const defaults = { sign: 'assertion', tamper: false, wrap: false, status: null, foreign_key: false, sha1: false, edit: [] };
    const res = await fetch(`${base}/control`, { method: 'POST', body: JSON.stringify({ ...defaults, ...b }) });
    expect(res.ok).toBeTruthy();
  };
  return { base, control, close: () => { child.kill(); fs.rmSync(file, { force: true }); } };
}

/// From Portolan's sign-in page through the IdP's form back to Portolan.
async function signInAt(page, org, email, groups) {
  await page.goto('/ui/signin');
  await page.locator('#sso input[name=org]').fill(org);
  await page.locator('#sso button[type=submit]').click();
  await page.waitForURL((u) => u.pathname === '/sso/redirect', { waitUntil: 'domcontentloaded' });
  await page.locator('#idp-email').fill(email);
  await page.locator('#idp-groups').fill(groups);
  await page.locator('#idp-signin').click();
  // pysaml2's page posts to the ACS, whose page posts again from Portolan's site.
  await page.waitForURL((u) => u.href.startsWith(BASE), { waitUntil: 'domcontentloaded' });
  await expect(page.locator('#sso-repost')).toHaveCount(0);
}

test('single sign-on through a real SAML identity provider', async ({ browser }) => {
  if (!PYTHON) {
    if (process.env.PORTOLAN_REQUIRE_BROWSER_TESTS) throw new Error('PORTOLAN_SAML_PYTHON is not set (.ci/saml-venv)');
    test.skip(true, 'PORTOLAN_SAML_PYTHON is not set');
  }
  const org = (await api('GET', '/v1/organization')).organization.name;
  const idp = await startIdp(org);
  try {
    // The admin sets SAML up on the organization page from the IdP's metadata URL.
    const admin = await browser.newContext({ baseURL: BASE });
    const ap = await admin.newPage();
    await signIn(ap);
    await ap.goto('/ui/organization#saml');
    await expect(ap.locator('#saml-acs')).toHaveText(`${BASE}/ui/sso/saml/acs`);
    const form = ap.locator('#saml-form');
    await form.locator('input[name=idpMetadataUrl]').fill(`${idp.base}/metadata`);
    await form.locator('input[name=groupsAttribute]').fill('groups');
    await form.locator('input[name=displayName]').fill('pysaml2');
    await form.getByRole('button', { name: 'Save SAML sign-in' }).click();
    await expect(ap.locator('#sso-status')).toContainText('pysaml2 (SAML 2.0)');
    await expect(ap.locator('#saml-idp')).toHaveText(`${idp.base}/metadata`);
    await shot(ap, '33-saml-settings');
    await admin.close();

    // A new person signs in and lands in the catalog, with the team of their group.
    const sam = await browser.newContext({ baseURL: BASE });
    const page = await sam.newPage();
    await signInAt(page, org, 'sam@example.com', 'saml-platform');
    await expect(page).toHaveURL(/\/ui\/catalog/);
    await expect(page.locator('.me')).toHaveText('sam@example.com');
    await shot(page, '34-saml-signed-in');
    const user = (await api('GET', '/v1/users/sam@example.com')).user;
    expect(user.providers).toEqual(['SAML']);
    expect(user.teams).toContain('saml-platform');
    await sam.close();

    // The IdP refuses: its status and message, and what to do, in words.
    await idp.control({ status: 'AuthnFailed' });
    const ctx2 = await browser.newContext({ baseURL: BASE });
    const p2 = await ctx2.newPage();
    await signInAt(p2, org, 'bob@example.com', '');
    await expect(p2.locator('h1')).toHaveText('Single sign-on did not sign you in');
    await expect(p2.locator('#sso-provider')).toContainText('AuthnFailed');
    await expect(p2.locator('#sso-provider')).toContainText('The user could not be authenticated');
    await expect(p2.locator('#sso-hint')).toContainText('could not authenticate the person');
    await shot(p2, '35-saml-idp-error');
    await ctx2.close();

    // An assertion altered after signing (the e-mail made the admin's): refused.
    await idp.control({ tamper: true });
    const ctx3 = await browser.newContext({ baseURL: BASE });
    const p3 = await ctx3.newPage();
    await signInAt(p3, org, 'mallory@example.com', '');
    await expect(p3.locator('#sso-message')).toContainText('changed after it was signed');
    await p3.goto('/ui/catalog');
    await expect(p3).toHaveURL(/\/ui\/signin/);
    await ctx3.close();
  } finally {
    await api('PUT', '/v1/organization/sso', { saml: null, localPasswords: true });
    idp.close();
  }
});
