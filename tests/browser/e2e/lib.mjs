// What the browser specs share: where the server is (the runner, crates/portolan-cli/tests/
// browser.rs, passes it), the bootstrap admin and API credentials, screenshots, an API client
// with the organization's credentials, and signing in as the admin.
import { expect } from '@playwright/test';
import fs from 'node:fs';
import path from 'node:path';

export const BASE = process.env.PORTOLAN_URL ?? 'http://127.0.0.1:7070';
export const EMAIL = process.env.PORTOLAN_ADMIN_EMAIL ?? 'admin@example.com';
export const PASSWORD = process.env.PORTOLAN_ADMIN_PASSWORD ?? 'browser-test-password';
export const SHOTS = process.env.SCREENSHOT_DIR ?? '../../target/browser-screenshots';
export const CLIENT_ID = process.env.PORTOLAN_CLIENT_ID ?? 'browser-test-client';
export const CLIENT_SECRET = process.env.PORTOLAN_CLIENT_SECRET ?? 'browser-test-client-secret';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function shot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

// A bearer token of the organization's API credentials.
export async function token() {
  const res = await fetch(`${BASE}/v1/auth/access_token`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET }),
  });
  expect(res.ok, await res.clone().text()).toBeTruthy();
  return (await res.json()).accessToken;
}

// Call the API; a non-2xx answer throws with its body.
export async function api(bearer, method, url, data) {
  const res = await fetch(`${BASE}${url}`, {
    method, headers: { Authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
    body: data === undefined ? undefined : JSON.stringify(data),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${text}`);
  return JSON.parse(text);
}

// Sign in as the bootstrap admin.
export async function signIn(page) {
  await page.goto('/ui/signin');
  await page.getByLabel('E-mail').fill(EMAIL);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.locator('.me')).toHaveText(EMAIL);
}

// At npm's `oidc-provider` (its development login and consent pages): sign in as `login`, or
// cancel, and wait until the browser is back at Portolan.
export async function atOidcProvider(page, login, { cancel = false } = {}) {
  await page.waitForURL((u) => u.pathname.startsWith('/interaction/'), { waitUntil: 'domcontentloaded' });
  if (cancel) {
    await page.getByText('[ Cancel ]').click();
  } else {
    await page.locator('input[name=login]').fill(login);
    await page.locator('input[name=password]').fill('any password');
    await page.locator('button[type=submit]').click();
    await page.waitForURL((u) => u.href.startsWith(BASE) || u.pathname.endsWith('/consent') || u.pathname.startsWith('/interaction/'),
      { waitUntil: 'domcontentloaded' });
    if (!page.url().startsWith(BASE)) {
      await page.getByRole('button', { name: 'Continue' }).click();
    }
  }
  await page.waitForURL((u) => u.href.startsWith(BASE), { waitUntil: 'domcontentloaded' });
}
