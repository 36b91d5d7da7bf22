// A protected iframe widget end to end, in real Chromium, against a real OAuth 2 provider:
// npm's `oidc-provider` (certified) with a public client (PKCE, no secret). The framed page is a
// tiny local server that takes the `auth_token` Portolan hands it and asks the provider's
// userinfo endpoint who it belongs to, so the frame shows the person only when the token is real.
// Covered: the sign-in link before any token, the person cancelling at the provider (its
// access_denied as a page in words), signing in, and the frame showing who signed in.
import { test, expect } from '@playwright/test';
import http from 'node:http';
import Provider from 'oidc-provider';
import { BASE, api, atOidcProvider, shot, signIn, token } from './lib.mjs';

const CLIENT = 'portolan-frames';

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

async function startProvider() {
  const server = http.createServer();
  const port = await listen(server);
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT, token_endpoint_auth_method: 'none',
      redirect_uris: [`${BASE}/ui/frames/callback`],
      grant_types: ['authorization_code'], response_types: ['code'],
    }],
    claims: { openid: ['sub'], email: ['email'] },
    cookies: { keys: ['frames-browser-test-cookie-key'] },
    findAccount: async (_ctx, id) => ({ accountId: id, claims: async () => ({ sub: id, email: `${id}@example.com` }) }),
  });
  server.on('request', provider.callback());
  return { issuer, close: () => server.close() };
}

// The framed application: shows whom the provider says the token belongs to.
async function startFramedApp(issuer) {
  const server = http.createServer(async (req, res) => {
    const token = new URL(req.url, 'http://x').searchParams.get('auth_token');
    let who = 'no token';
    if (token) {
      const me = await fetch(`${issuer}/me`, { headers: { authorization: `Bearer ${token}` } });
      who = me.ok ? `Signed in as ${(await me.json()).email}` : `Token refused (${me.status})`;
    }
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<!doctype html><title>app</title><h1 id="who">${who}</h1>`);
  });
  const port = await listen(server);
  return { url: `http://127.0.0.1:${port}/app`, close: () => server.close() };
}

test('a protected frame signs in through OAuth 2 with PKCE and gets a real token', async ({ page }) => {
  const idp = await startProvider();
  const app = await startFramedApp(idp.issuer);
  const bearer = await token();
  try {
    await api(bearer, 'POST', '/v1/pages', { identifier: 'frames_dash', type: 'dashboard', title: 'Frames', widgets: [
      { id: 'app', type: 'iframe-widget', title: 'Our app', url: app.url, urlType: 'protected',
        authorizationUrl: `${idp.issuer}/auth`, tokenUrl: `${idp.issuer}/token`, clientId: CLIENT,
        scopes: ['openid', 'email'] },
    ] });
    await signIn(page);
    await page.goto('/ui/dashboards/frames_dash');
    const link = page.locator('[data-widget="app"] a.frame-sign-in-link');
    await expect(link).toHaveText('Sign in to 127.0.0.1');
    await expect(page.locator('[data-widget="app"] iframe')).toHaveCount(0);
    await shot(page, '30-frame-sign-in');

    // The person cancels at the provider: its access_denied, explained, and a way back.
    await link.click();
    await atOidcProvider(page, 'dev', { cancel: true });
    await expect(page.locator('h1')).toHaveText('The frame could not sign you in');
    await expect(page.locator('#sso-provider')).toContainText('access_denied');
    await expect(page.locator('#sso-hint')).toContainText('declined consent');
    await page.locator('#sso-back').click();
    await expect(page).toHaveURL(/\/ui\/dashboards\/frames_dash$/);

    // Signed in: back on the dashboard, the frame has a token the provider recognizes.
    await page.locator('[data-widget="app"] a.frame-sign-in-link').click();
    await atOidcProvider(page, 'dev');
    await expect(page).toHaveURL(/\/ui\/dashboards\/frames_dash$/);
    await expect(page.frameLocator('[data-widget="app"] iframe').locator('#who')).toHaveText('Signed in as dev@example.com');
    await shot(page, '31-frame-signed-in');
  } finally {
    await api(bearer, 'DELETE', '/v1/pages/frames_dash').catch(() => {});
    app.close();
    idp.close();
  }
});
