import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../common/config.js';
import { loadServerConfig } from '../../server/config.js';
import { LOGIN_PAGE_CSP } from '../../server/login-page.js';
import { LoginLimiter } from '../../server/login-limiter.js';
import { runCli } from '../support/processes.js';
import {
  ADMIN,
  TEST_AUTH,
  call,
  problem,
  startTestApp,
  appBefore,
  methodNotAllowed,
} from '../support/server.js';

const PROBLEM = 'application/problem+json; charset=utf-8';
const HTML = 'text/html; charset=utf-8';
const API_CSP = "default-src 'none'; frame-ancestors 'self'";

let clock = Date.now();
const limiter = new LoginLimiter({ now: () => clock });
const tested = appBefore({ app: { limiter } });

function form(fields: Record<string, string>) {
  return {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
  };
}

describe('security headers', () => {
  it('are on every answer: JSON, problems, 405, 413, 204, HEAD', async () => {
    const answers = [
      await call(`${tested.url}/health`),
      await call(`${tested.url}/no/such/route`),
      await call(`${tested.url}/api/v1/places`, { method: 'PATCH' }),
      await call(`${tested.url}/api/v1/places`, { method: 'POST', json: {} }),
      await call(`${tested.url}/api/v1/places`, {
        method: 'POST',
        headers: ADMIN,
        json: { name: 'x'.repeat(1_100_000) },
      }),
      await call(`${tested.url}/api/v1/places`, { method: 'OPTIONS' }),
      await call(`${tested.url}/version`, { method: 'HEAD' }),
    ];
    expect(answers.map((a) => a.status)).toEqual([200, 404, 405, 401, 413, 204, 200]);
    for (const answer of answers) {
      expect(answer.headers.get('x-frame-options')).toBe('SAMEORIGIN');
      expect(answer.headers.get('x-content-type-options')).toBe('nosniff');
      expect(answer.headers.get('referrer-policy')).toBe('strict-origin-when-cross-origin');
      expect(answer.headers.get('content-security-policy')).toBe(API_CSP);
    }
  });
});

describe('GET /admin/login', () => {
  it('is an HTML page with a form posting to the admin login, under a strict CSP', async () => {
    const page = await call(`${tested.url}/admin/login`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe(HTML);
    expect(page.headers.get('cache-control')).toBe('no-store');
    expect(page.headers.get('x-frame-options')).toBe('SAMEORIGIN');
    expect(page.text.startsWith('<!DOCTYPE html>\n<html lang="en">')).toBe(true);
    expect(page.text).toContain('<form method="post" action="/api/v1/admin/login">');
    expect(page.text).toContain('<input id="username" name="username"');
    expect(page.text).toContain('name="password" type="password"');
    expect(page.text).not.toContain('<script');
    expect(page.text).not.toContain('role="alert"');
    const csp = page.headers.get('content-security-policy')!;
    expect(csp).toBe(LOGIN_PAGE_CSP);
    // The one inline style is allowed by its hash, nothing by 'unsafe-inline'.
    const style = /<style>([\s\S]*?)<\/style>/.exec(page.text)![1]!;
    const hash = createHash('sha256').update(style).digest('base64');
    expect(csp).toBe(
      `default-src 'none'; style-src 'sha256-${hash}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
    );
  });

  it('answers 405 with Allow to other methods', async () => {
    const post = await call(`${tested.url}/admin/login`, form({ username: 'a', password: 'b' }));
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD, OPTIONS');
    expect(post.body).toEqual(
      methodNotAllowed(
        'POST',
        'GET, HEAD, OPTIONS',
        '/admin/login',
        post.headers.get('x-request-id'),
      ),
    );
  });
});

describe('the login form (POST /api/v1/admin/login as a form)', () => {
  const login = `/api/v1/admin/login`;

  it('signs in: a page with a token that writes', async () => {
    limiter.recordSuccess('127.0.0.1');
    const result = await call(
      `${tested.url}${login}`,
      form({ username: TEST_AUTH.adminUsername, password: TEST_AUTH.adminPassword }),
    );
    expect(result.status).toBe(200);
    expect(result.headers.get('content-type')).toBe(HTML);
    expect(result.headers.get('cache-control')).toBe('no-store');
    expect(result.headers.get('content-security-policy')).toBe(LOGIN_PAGE_CSP);
    expect(result.text).toContain('<h1>Signed in</h1>');
    expect(result.text).toContain('valid for 60 minutes');
    const token = /<textarea id="token" readonly>([^<]+)<\/textarea>/.exec(result.text)![1]!;
    const created = await call(`${tested.url}/api/v1/organizations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      json: { name: 'Signed in by form' },
    });
    expect(created.status).toBe(201);
  });

  it('says why a try failed, the same for an unknown user as for a wrong password', async () => {
    limiter.recordSuccess('127.0.0.1');
    const wrongPassword = await call(
      `${tested.url}${login}`,
      form({ username: TEST_AUTH.adminUsername, password: 'wrong password' }),
    );
    const unknownUser = await call(
      `${tested.url}${login}`,
      form({ username: 'nobody', password: TEST_AUTH.adminPassword }),
    );
    for (const result of [wrongPassword, unknownUser]) {
      expect(result.status).toBe(401);
      expect(result.headers.get('content-type')).toBe(HTML);
      expect(result.headers.get('www-authenticate')).toBe('Bearer realm="togather"');
      expect(result.headers.get('content-security-policy')).toBe(LOGIN_PAGE_CSP);
      expect(result.text).toContain(
        '<p class="error" role="alert">Wrong username or password.</p>',
      );
      expect(result.text).toContain('<form method="post" action="/api/v1/admin/login">');
    }
    expect(unknownUser.text).toBe(wrongPassword.text);

    const missing = await call(`${tested.url}${login}`, form({ username: 'admin' }));
    expect(missing.status).toBe(400);
    expect(missing.headers.get('content-type')).toBe(HTML);
    expect(missing.text).toContain(
      '<p class="error" role="alert">Enter a username and a password.</p>',
    );
  });

  it('says when it is throttled, and when to try again (429, Retry-After)', async () => {
    limiter.recordSuccess('127.0.0.1');
    for (let i = 0; i < 5; i++) {
      const failed = await call(`${tested.url}${login}`, form({ username: 'x', password: 'y' }));
      expect(failed.status).toBe(401);
    }
    const limited = await call(
      `${tested.url}${login}`,
      form({ username: TEST_AUTH.adminUsername, password: TEST_AUTH.adminPassword }),
    );
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('900');
    expect(limited.headers.get('content-type')).toBe(HTML);
    expect(limited.text).toContain(
      '<p class="error" role="alert">Too many failed sign-ins from your address. Try again in 900 seconds.</p>',
    );
    // JSON clients still get JSON.
    const json = await call(`${tested.url}${login}`, {
      method: 'POST',
      json: { username: 'x', password: 'y' },
    });
    expect(json.status).toBe(429);
    expect(json.headers.get('content-type')).toBe(PROBLEM);
    clock += 16 * 60_000;
  });

  it('escapes what it shows', async () => {
    const { loginPage } = await import('../../server/login-page.js');
    expect(loginPage('/x', '<script>"&\'')).toContain(
      '<p class="error" role="alert">&lt;script&gt;&quot;&amp;&#39;</p>',
    );
  });
});

describe('CORS', () => {
  const origin = 'https://app.example.org';

  it('with the default CORS_ORIGINS=*: any origin may read, without credentials', async () => {
    const get = await call(`${tested.url}/api/v1/events`, { headers: { origin } });
    expect(get.status).toBe(200);
    expect(get.headers.get('access-control-allow-origin')).toBe('*');
    expect(get.headers.get('access-control-allow-credentials')).toBeNull();
    expect(get.headers.get('access-control-expose-headers')).toBe(
      'Location, Retry-After, X-Request-Id, X-Togather-Slot',
    );
    expect(get.headers.get('vary')).toContain('Origin');

    const preflight = await call(`${tested.url}/api/v1/places`, {
      method: 'OPTIONS',
      headers: {
        origin,
        'access-control-request-method': 'GET',
        'access-control-request-headers': 'x-request-id',
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    expect(preflight.headers.get('access-control-allow-methods')).toBe('GET, HEAD');
    expect(preflight.headers.get('access-control-allow-headers')).toBe(
      'Content-Type, X-Request-Id',
    );
    expect(preflight.headers.get('access-control-max-age')).toBe('600');
    expect(preflight.headers.get('access-control-allow-credentials')).toBeNull();

    const doc = await call(`${tested.url}/openapi.json`, { headers: { origin } });
    expect(doc.headers.get('access-control-allow-origin')).toBe('*');
  });

  it('with *: a preflight for a write is refused (403 saying why), a write gets no CORS headers', async () => {
    const preflight = await call(`${tested.url}/api/v1/places`, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST' },
    });
    expect(preflight.status).toBe(403);
    expect(preflight.headers.get('content-type')).toBe(PROBLEM);
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    expect(preflight.body).toEqual(
      problem(
        403,
        'Forbidden',
        `origin ${origin} may not POST here: CORS_ORIGINS allows it only GET and HEAD`,
        '/api/v1/places',
        preflight.headers.get('x-request-id'),
      ),
    );
    const write = await call(`${tested.url}/api/v1/places`, {
      method: 'POST',
      headers: { ...ADMIN, origin },
      json: { name: 'Cross-origin' },
    });
    expect(write.status).toBe(201);
    expect(write.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('adds nothing outside the API, nor without Origin (OPTIONS answers Allow as before)', async () => {
    const health = await call(`${tested.url}/health`, { headers: { origin } });
    expect(health.headers.get('access-control-allow-origin')).toBeNull();
    const options = await call(`${tested.url}/api/v1/places`, { method: 'OPTIONS' });
    expect(options.status).toBe(204);
    expect(options.headers.get('allow')).toBe('GET, HEAD, POST, OPTIONS');
    expect(options.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('with listed origins: those may write (Authorization allowed), others get nothing', async () => {
    const listed = await startTestApp({
      database: tested.db,
      settings: { cors: { anyOrigin: false, origins: [origin] } },
    });
    try {
      const preflight = await call(`${listed.url}/api/v1/events/x`, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'PUT',
          'access-control-request-headers': 'authorization, content-type',
        },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin')).toBe(origin);
      expect(preflight.headers.get('access-control-allow-methods')).toBe(
        'GET, HEAD, POST, PUT, DELETE',
      );
      expect(preflight.headers.get('access-control-allow-headers')).toBe(
        'Authorization, Content-Type, X-Request-Id',
      );
      expect(preflight.headers.get('access-control-allow-credentials')).toBeNull();
      expect(preflight.headers.get('vary')).toContain('Origin');

      const write = await call(`${listed.url}/api/v1/places`, {
        method: 'POST',
        headers: { ...ADMIN, origin },
        json: { name: 'From the admin app' },
      });
      expect(write.status).toBe(201);
      expect(write.headers.get('access-control-allow-origin')).toBe(origin);

      const other = 'https://elsewhere.example.net';
      const read = await call(`${listed.url}/api/v1/places`, { headers: { origin: other } });
      expect(read.status).toBe(200);
      expect(read.headers.get('access-control-allow-origin')).toBeNull();
      const refused = await call(`${listed.url}/api/v1/places`, {
        method: 'OPTIONS',
        headers: { origin: other, 'access-control-request-method': 'GET' },
      });
      expect(refused.status).toBe(403);
      expect((refused.body as { detail: string }).detail).toBe(
        `origin ${other} may not GET here: CORS_ORIGINS allows it nothing`,
      );
    } finally {
      await listed.close();
    }
  });
});

describe('CORS_ORIGINS', () => {
  const env = { ENVIRONMENT: 'test' };

  it('takes origins and *, normalized', () => {
    expect(loadServerConfig(env).cors).toEqual({ anyOrigin: true, origins: [] });
    expect(
      loadServerConfig({
        ...env,
        CORS_ORIGINS: 'https://Admin.Example.org/, http://localhost:3000,https://x.example:443, *',
      }).cors,
    ).toEqual({
      anyOrigin: true,
      origins: ['https://admin.example.org', 'http://localhost:3000', 'https://x.example'],
    });
  });

  it('names every bad entry', () => {
    let error: unknown;
    try {
      loadServerConfig({
        ...env,
        CORS_ORIGINS: 'example.org,https://a.example/path,,ftp://b.example,https://u:p@c.example',
      });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const hint = 'is not an origin: give scheme://host[:port] (no path), or *, comma-separated';
    expect((error as ConfigError).problems).toEqual([
      `CORS_ORIGINS: "example.org" ${hint}`,
      `CORS_ORIGINS: "https://a.example/path" ${hint}`,
      `CORS_ORIGINS: an empty entry ${hint}`,
      `CORS_ORIGINS: "ftp://b.example" ${hint}`,
      `CORS_ORIGINS: "https://u:p@c.example" ${hint}`,
    ]);
  });

  it('makes togather serve exit 2 with the configuration error', async () => {
    const result = await runCli(['serve'], { ENVIRONMENT: 'test', CORS_ORIGINS: 'nonsense' });
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      'togather: invalid configuration:\n' +
        '  - CORS_ORIGINS: "nonsense" is not an origin: give scheme://host[:port] (no path), or *, comma-separated\n',
    );
  });
});
