// Single sign-on end to end, in real Chromium, against a real OpenID Connect provider: npm's
// `oidc-provider` (certified), run in this process with its development login and consent pages.
// A small proxy in front of it can alter the ID token the token endpoint answers, so a tampered
// token is tried against the real flow. Covered: sign-in from the sign-in page's SSO form, the
// user created just in time with a team from the groups claim, the provider's own error (the
// person cancels at the provider) shown as a page in words, and a tampered token refused.
// Settings are restored at the end (the other specs sign in with a password).
import { test, expect } from '@playwright/test';
import http from 'node:http';
import Provider from 'oidc-provider';
import { BASE, api as libApi, atOidcProvider, shot, token } from './lib.mjs';

const OIDC_CLIENT = 'portolan-browser';
const OIDC_SECRET = 'a-client-secret-long-enough-for-hs-and-basic-auth';

// The API with the organization's credentials (a fresh token per call).
async function api(method, url, data) {
  return libApi(await token(), method, url, data);
}

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

/// The provider behind a proxy that, when `state.tamper` is set, rewrites the e-mail inside
/// the ID token the token endpoint answers (keeping the signature).
async function startProvider(state) {
  const outer = http.createServer();
  const port = await listen(outer);
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: OIDC_CLIENT, client_secret: OIDC_SECRET,
      redirect_uris: [`${BASE}/ui/sso/callback`],
      grant_types: ['authorization_code'], response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['given_name', 'family_name'], groups: ['groups'] },
    // Portolan reads the person from the ID token, as most providers send it there.
    conformIdTokenClaims: false,
    cookies: { keys: ['browser-test-cookie-key'] },
    findAccount: async (_ctx, id) => ({
      accountId: id,
      claims: async () => ({
        sub: id, email: `${id}@example.com`, email_verified: true,
        given_name: id, family_name: 'Oidc', groups: ['oidc-platform'],
      }),
    }),
  });
  const inner = http.createServer(provider.callback());
  const innerPort = await listen(inner);
  outer.on('request', (req, res) => {
    const up = http.request({ host: '127.0.0.1', port: innerPort, method: req.method, path: req.url, headers: req.headers }, (r) => {
      if (!(state.tamper && req.url.startsWith('/token'))) {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
        return;
      }
      const chunks = [];
      r.on('data', (c) => chunks.push(c));
      r.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString());
        const [h, p, s] = body.id_token.split('.');
        const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
        claims.email = 'admin@example.com';
        body.id_token = [h, Buffer.from(JSON.stringify(claims)).toString('base64url'), s].join('.');
        const out = JSON.stringify(body);
        const headers = { ...r.headers, 'content-length': Buffer.byteLength(out) };
        res.writeHead(r.statusCode, headers);
        res.end(out);
      });
    });
    req.pipe(up);
  });
  return { issuer, close: () => { outer.close(); inner.close(); } };
}

/// From Portolan's sign-in page through the provider's login (and consent) back to Portolan.
async function signInAt(page, org, login, { cancel = false } = {}) {
  await page.goto('/ui/signin');
  await page.locator('#sso input[name=org]').fill(org);
  await page.locator('#sso button[type=submit]').click();
  await atOidcProvider(page, login, { cancel });
}

test('single sign-on through a real OpenID Connect provider', async ({ browser }) => {
  const state = { tamper: false };
  const idp = await startProvider(state);
  const org = (await api('GET', '/v1/organization')).organization.name;
  try {
    const saved = await api('PUT', '/v1/organization/sso', {
      oidc: { issuer: idp.issuer, clientId: OIDC_CLIENT, clientSecret: OIDC_SECRET,
              scopes: ['openid', 'email', 'profile', 'groups'], groupsClaim: 'groups', displayName: 'oidc-provider' },
    });
    expect(saved.sso.oidc.redirectUri).toBe(`${BASE}/ui/sso/callback`);

    // Sign-in: a new person lands in the catalog, created just in time with the group's team.
    const ann = await browser.newContext({ baseURL: BASE });
    const page = await ann.newPage();
    await signInAt(page, org, 'ann');
    await expect(page).toHaveURL(/\/ui\/catalog/);
    await expect(page.locator('body')).toContainText('ann@example.com');
    await shot(page, '14-sso-signed-in');
    const user = (await api('GET', '/v1/users/ann@example.com')).user;
    expect(user.roles).toEqual([{ name: 'Member' }]);
    expect(user.teams).toContain('oidc-platform');
    expect((await api('GET', '/v1/teams/oidc-platform')).team.provider).toBe('OIDC');
    await ann.close();

    // The person cancels at the provider: its access_denied, explained.
    const cancel = await browser.newContext({ baseURL: BASE });
    const p2 = await cancel.newPage();
    await signInAt(p2, org, 'bob', { cancel: true });
    await expect(p2.locator('h1')).toHaveText('Single sign-on did not sign you in');
    await expect(p2.locator('#sso-provider')).toContainText('access_denied');
    await expect(p2.locator('#sso-provider')).toContainText('End-User aborted interaction');
    await expect(p2.locator('#sso-hint')).toContainText('not assigned to the application');
    await shot(p2, '15-sso-provider-error');
    await cancel.close();

    // A token altered on its way (the e-mail changed to the admin's): refused, nobody signed in.
    state.tamper = true;
    const evil = await browser.newContext({ baseURL: BASE });
    const p3 = await evil.newPage();
    await signInAt(p3, org, 'mallory');
    await expect(p3.locator('#sso-message')).toContainText('signature does not verify');
    await p3.goto('/ui/catalog');
    await expect(p3).toHaveURL(/\/ui\/signin/);
    await evil.close();
  } finally {
    await api('PUT', '/v1/organization/sso', { oidc: null, localPasswords: true });
    idp.close();
  }
});
