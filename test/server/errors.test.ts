import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoginLimiter } from '../../server/login-limiter.js';
import {
  ADMIN,
  TEST_AUTH,
  call,
  problem,
  startTestApp,
  type TestApp,
  appBefore,
  methodNotAllowed,
} from '../support/server.js';

const PROBLEM = 'application/problem+json; charset=utf-8';

let events: string;
let clock = Date.now();
const limiter = new LoginLimiter({ now: () => clock });
const tested = appBefore({
  app: {
    limiter,
    extraRoutes: (app) =>
      app.get('/test/boom', async () => {
        throw new Error('boom: internal detail');
      }),
  },
});

beforeAll(async () => {
  events = `${tested.url}/api/v1/events`;
});

const valid = { name: 'Valid', startDate: '2030-01-01T10:00:00Z' };

describe('400 Bad Request', () => {
  it('names bad JSON', async () => {
    const result = await call(events, {
      method: 'POST',
      headers: { ...ADMIN, 'content-type': 'application/json' },
      body: '{"name": ',
    });
    expect(result.status).toBe(400);
    expect(result.headers.get('content-type')).toBe(PROBLEM);
    expect(result.body).toEqual(
      problem(
        400,
        'Bad Request',
        'request body is not valid JSON',
        '/api/v1/events',
        result.headers.get('x-request-id'),
      ),
    );
  });

  it('names an empty JSON body', async () => {
    const result = await call(events, {
      method: 'POST',
      headers: { ...ADMIN, 'content-type': 'application/json' },
    });
    expect(result.status).toBe(400);
    expect((result.body as { detail: string }).detail).toBe(
      'request body is empty; send a JSON object',
    );
  });

  it('names every invalid field with its reason', async () => {
    const result = await call(events, {
      method: 'POST',
      headers: ADMIN,
      json: {
        name: '',
        startDate: '2030-01-01 10:00',
        endDate: '2029-01-01T00:00:00Z',
        url: 'ftp://example.org/x',
        location: { address: 'somewhere' },
        organizer: 'Someone',
        colour: 'blue',
      },
    });
    expect(result.status).toBe(400);
    expect(result.body).toEqual(
      problem(
        400,
        'Bad Request',
        'invalid fields: name, startDate, url, location.name, organizer, colour',
        '/api/v1/events',
        result.headers.get('x-request-id'),
        {
          errors: [
            { field: 'name', message: 'must not be empty' },
            {
              field: 'startDate',
              message: 'must be an ISO 8601 date-time with a time zone, e.g. 2026-05-01T19:00:00Z',
            },
            { field: 'url', message: 'must be an http(s) URL' },
            { field: 'location.name', message: 'is required' },
            {
              field: 'organizer',
              message: 'must be an object with name and optional url, or with identifier',
            },
            { field: 'colour', message: 'is not a known field' },
          ],
        },
      ),
    );
  });

  it('names an end before the start, and a missing name', async () => {
    const result = await call(events, {
      method: 'POST',
      headers: ADMIN,
      json: { startDate: '2030-01-02T00:00:00Z', endDate: '2030-01-01T00:00:00Z' },
    });
    expect(result.status).toBe(400);
    expect((result.body as { errors: unknown }).errors).toEqual([
      { field: 'name', message: 'is required' },
    ]);
    const order = await call(events, {
      method: 'POST',
      headers: ADMIN,
      json: { name: 'x', startDate: '2030-01-02T00:00:00Z', endDate: '2030-01-01T00:00:00Z' },
    });
    expect((order.body as { errors: unknown }).errors).toEqual([
      { field: 'endDate', message: 'must not be before startDate' },
    ]);
  });

  it('refuses a body that is not an object', async () => {
    const result = await call(events, { method: 'POST', headers: ADMIN, json: [valid] });
    expect(result.status).toBe(400);
    expect(result.body).toMatchObject({
      detail: 'invalid fields: (body)',
      errors: [{ field: '(body)', message: 'must be a JSON object' }],
    });
  });

  it('names every bad query parameter of the list', async () => {
    const result = await call(`${events}?limit=0&start_date=yesterday&cursor=nonsense&q=`);
    expect(result.status).toBe(400);
    expect(result.body).toEqual(
      problem(
        400,
        'Bad Request',
        'invalid query parameters: start_date, q, limit, cursor',
        '/api/v1/events',
        result.headers.get('x-request-id'),
        {
          errors: [
            {
              field: 'start_date',
              message: 'must be a date (2026-05-01) or an ISO 8601 date-time with a time zone',
            },
            { field: 'q', message: 'must not be empty' },
            { field: 'limit', message: 'must be at least 1' },
            { field: 'cursor', message: 'is not a cursor returned as next_cursor' },
          ],
        },
      ),
    );
    const order = await call(`${events}?start_date=2030-02-01&end_date=2030-01-31&limit=abc`);
    expect((order.body as { errors: unknown }).errors).toEqual([
      { field: 'limit', message: 'must be a whole number from 1 (above 100 counts as 100)' },
      { field: 'end_date', message: 'must not be before start_date' },
    ]);
    const reversed = await call(`${events}?start_date=2030-02-01&end_date=2030-01-01`);
    expect((reversed.body as { errors: unknown }).errors).toEqual([
      { field: 'end_date', message: 'must not be before start_date' },
    ]);
  });
});

describe('401 Unauthorized', () => {
  const expectUnauthorized = async (
    headers: Record<string, string>,
    detail: string,
    challenge: string,
  ) => {
    const result = await call(events, { method: 'POST', headers, json: valid });
    expect(result.status).toBe(401);
    expect(result.headers.get('www-authenticate')).toBe(challenge);
    expect(result.body).toEqual(
      problem(401, 'Unauthorized', detail, '/api/v1/events', result.headers.get('x-request-id')),
    );
  };

  it('without a key', async () => {
    await expectUnauthorized(
      {},
      'missing credentials: send Authorization: Bearer <admin API key or token>',
      'Bearer realm="togather"',
    );
    await expectUnauthorized(
      { authorization: `Basic ${Buffer.from('admin:x').toString('base64')}` },
      'missing credentials: send Authorization: Bearer <admin API key or token>',
      'Bearer realm="togather"',
    );
  });

  it('with a wrong key', async () => {
    await expectUnauthorized(
      { authorization: `Bearer ${TEST_AUTH.adminApiKey}x` },
      'invalid admin API key or token',
      'Bearer realm="togather", error="invalid_token"',
    );
  });

  it('with an expired JWT, and with one signed by another secret', async () => {
    const now = Math.floor(Date.now() / 1000);
    const sign = (secret: string, exp: number) =>
      new SignJWT({ role: 'admin' })
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuer('togather')
        .setAudience('togather-admin')
        .setSubject('admin')
        .setIssuedAt(exp - 3600)
        .setExpirationTime(exp)
        .sign(new TextEncoder().encode(secret));
    await expectUnauthorized(
      { authorization: `Bearer ${await sign(TEST_AUTH.jwtSecret, now - 60)}` },
      'token expired; log in again',
      'Bearer realm="togather", error="invalid_token", error_description="token expired"',
    );
    await expectUnauthorized(
      { authorization: `Bearer ${await sign('another-secret'.padEnd(64, 'x'), now + 600)}` },
      'invalid admin API key or token',
      'Bearer realm="togather", error="invalid_token"',
    );
  });

  it('comes before body checks, and the same for DELETE', async () => {
    const result = await call(events, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{not json',
    });
    expect(result.status).toBe(401);
    const del = await call(`${events}/00000000-0000-4000-8000-000000000000`, { method: 'DELETE' });
    expect(del.status).toBe(401);
  });
});

describe('admin login', () => {
  const login = (username: string, password: string, ip = '') =>
    call(`${tested.url}/api/v1/admin/login`, {
      method: 'POST',
      json: { username, password },
      headers: ip ? { 'x-forwarded-for': ip } : {},
    });

  it('issues a JWT that writes events', async () => {
    const result = await login(TEST_AUTH.adminUsername, TEST_AUTH.adminPassword);
    expect(result.status).toBe(200);
    expect(result.headers.get('cache-control')).toBe('no-store');
    const body = result.body as { access_token: string; token_type: string; expires_in: number };
    expect(body.token_type).toBe('Bearer');
    expect(body.expires_in).toBe(3600);
    const created = await call(events, {
      method: 'POST',
      headers: { authorization: `Bearer ${body.access_token}` },
      json: valid,
    });
    expect(created.status).toBe(201);
  });

  it('names missing login fields', async () => {
    const result = await call(`${tested.url}/api/v1/admin/login`, {
      method: 'POST',
      json: { user: 'admin' },
    });
    expect(result.status).toBe(400);
    expect((result.body as { errors: unknown }).errors).toEqual([
      { field: 'username', message: 'is required' },
      { field: 'password', message: 'is required' },
      { field: 'user', message: 'is not a known field' },
    ]);
  });

  it('limits failed logins: 5 per 15 minutes, then 429 with Retry-After even for the right password', async () => {
    limiter.recordSuccess('127.0.0.1');
    for (let i = 0; i < 5; i++) {
      const failed = await login('admin', `wrong-${i}`);
      expect(failed.status).toBe(401);
      expect(failed.body).toEqual(
        problem(
          401,
          'Unauthorized',
          'wrong username or password',
          '/api/v1/admin/login',
          failed.headers.get('x-request-id'),
        ),
      );
    }
    const limited = await login(TEST_AUTH.adminUsername, TEST_AUTH.adminPassword);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('900');
    expect(limited.headers.get('content-type')).toBe(PROBLEM);
    expect(limited.body).toEqual(
      problem(
        429,
        'Too Many Requests',
        'too many failed logins; try again in 900 s',
        '/api/v1/admin/login',
        limited.headers.get('x-request-id'),
      ),
    );

    clock += 10 * 60_000;
    const later = await login(TEST_AUTH.adminUsername, TEST_AUTH.adminPassword);
    expect(later.status).toBe(429);
    expect(later.headers.get('retry-after')).toBe('300');

    clock += 5 * 60_000 + 1000;
    const afterWindow = await login(TEST_AUTH.adminUsername, TEST_AUTH.adminPassword);
    expect(afterWindow.status).toBe(200);
  });
});

describe('other statuses', () => {
  it('404 for an unknown route', async () => {
    const result = await call(`${tested.url}/api/v2/nothing?secret=x`);
    expect(result.status).toBe(404);
    expect(result.headers.get('content-type')).toBe(PROBLEM);
    expect(result.body).toEqual(
      problem(
        404,
        'Not Found',
        'no route for GET /api/v2/nothing',
        '/api/v2/nothing',
        result.headers.get('x-request-id'),
      ),
    );
  });

  it('405 with Allow for a method a route does not take, before reading the body', async () => {
    const result = await call(events, {
      method: 'PUT',
      headers: { 'content-type': 'text/plain' },
      body: 'x',
    });
    expect(result.status).toBe(405);
    expect(result.headers.get('allow')).toBe('GET, HEAD, POST, OPTIONS');
    expect(result.body).toEqual(
      methodNotAllowed(
        'PUT',
        'GET, HEAD, POST, OPTIONS',
        '/api/v1/events',
        result.headers.get('x-request-id'),
      ),
    );
    const item = await call(`${events}/00000000-0000-4000-8000-000000000000`, { method: 'PATCH' });
    expect(item.status).toBe(405);
    expect(item.headers.get('allow')).toBe('GET, HEAD, PUT, DELETE, OPTIONS');
    const login = await call(`${tested.url}/api/v1/admin/login`);
    expect(login.status).toBe(405);
    expect(login.headers.get('allow')).toBe('POST, OPTIONS');
  });

  it('500 without internals for an unexpected error, logged with its request id', async () => {
    const result = await call(`${tested.url}/test/boom`);
    expect(result.status).toBe(500);
    expect(result.body).toEqual(
      problem(
        500,
        'Internal Server Error',
        'internal error; the request id identifies it in the logs',
        '/test/boom',
        result.headers.get('x-request-id'),
      ),
    );
    expect(result.text).not.toContain('internal detail');
    const logged = tested.server.logs.lines.find(
      (l) => l.request_id === result.headers.get('x-request-id') && l.msg === 'request failed',
    );
    expect(logged).toMatchObject({ level: 50, err: { message: 'boom: internal detail' } });
  });

  it('OPTIONS answers 204 with Allow', async () => {
    const result = await call(events, { method: 'OPTIONS' });
    expect(result.status).toBe(204);
    expect(result.headers.get('allow')).toBe('GET, HEAD, POST, OPTIONS');
  });

  it('413 for a body over 1 MiB', async () => {
    const result = await call(events, {
      method: 'POST',
      headers: ADMIN,
      json: { ...valid, description: 'x'.repeat(1_048_576) },
    });
    expect(result.status).toBe(413);
    expect(result.body).toEqual(
      problem(
        413,
        'Payload Too Large',
        'request body is larger than 1048576 bytes (1 MiB)',
        '/api/v1/events',
        result.headers.get('x-request-id'),
      ),
    );
  });

  it('415 for a body that is not JSON, and for none at all', async () => {
    const text = await call(events, {
      method: 'POST',
      headers: { ...ADMIN, 'content-type': 'text/plain' },
      body: JSON.stringify(valid),
    });
    expect(text.status).toBe(415);
    expect(text.body).toEqual(
      problem(
        415,
        'Unsupported Media Type',
        'Content-Type text/plain is not supported; send application/json',
        '/api/v1/events',
        text.headers.get('x-request-id'),
      ),
    );
    const form = await call(events, {
      method: 'POST',
      headers: { ...ADMIN, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'name=x',
    });
    expect(form.status).toBe(415);
    const none = await call(events, { method: 'POST', headers: ADMIN });
    expect(none.status).toBe(415);
    expect((none.body as { detail: string }).detail).toBe(
      'missing Content-Type; send a JSON body as application/json',
    );
  });
});

describe('X-Request-Id and logs', () => {
  it('echoes a sane id, and logs every line of the request with it', async () => {
    const id = 'req-test:42.a_b';
    const result = await call(events, {
      method: 'POST',
      headers: { ...ADMIN, 'x-request-id': id },
      json: valid,
    });
    expect(result.status).toBe(201);
    expect(result.headers.get('x-request-id')).toBe(id);
    const lines = tested.server.logs.lines.filter((l) => l.request_id === id);
    expect(lines.map((l) => l.msg)).toEqual([
      'admin request',
      'event created',
      'request completed',
    ]);
  });

  it('replaces an unsafe or overlong id with a generated one', async () => {
    for (const bad of ['has space', 'x'.repeat(129), 'quote"d']) {
      const result = await call(`${tested.url}/healthz`, { headers: { 'x-request-id': bad } });
      const echoed = result.headers.get('x-request-id');
      expect(echoed).not.toBe(bad);
      expect(echoed).toMatch(/^[0-9a-f-]{36}$/);
    }
    const problemBody = await call(`${tested.url}/nowhere`);
    expect((problemBody.body as { request_id: string }).request_id).toBe(
      problemBody.headers.get('x-request-id'),
    );
  });

  it('never logs the API key, the password, the JWT secret or a token', async () => {
    const login = await call(`${tested.url}/api/v1/admin/login`, {
      method: 'POST',
      headers: { 'x-forwarded-for': '10.9.9.9' },
      json: { username: TEST_AUTH.adminUsername, password: TEST_AUTH.adminPassword },
    });
    const token = (login.body as { access_token?: string }).access_token ?? 'no-token';
    await call(events, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      json: valid,
    });
    await call(events, { method: 'POST', headers: ADMIN, json: valid });
    const text = tested.server.logs.text();
    expect(text).toContain('request completed');
    for (const secret of [
      TEST_AUTH.adminApiKey,
      TEST_AUTH.adminPassword,
      TEST_AUTH.jwtSecret,
      token,
    ]) {
      expect(text).not.toContain(secret);
    }
  });
});

describe('behind the edge proxy (TRUST_PROXY)', () => {
  let proxied: TestApp;

  beforeAll(async () => {
    proxied = await startTestApp({
      database: tested.db,
      settings: { trustProxy: ['127.0.0.1'] },
    });
  });

  afterAll(async () => {
    await proxied?.close();
  });

  it('limits logins per forwarded client, not per proxy address', async () => {
    const login = (client: string, password: string) =>
      call(`${proxied.url}/api/v1/admin/login`, {
        method: 'POST',
        headers: { 'x-forwarded-for': client },
        json: { username: TEST_AUTH.adminUsername, password },
      });
    for (let i = 0; i < 5; i++) expect((await login('203.0.113.7', 'wrong')).status).toBe(401);
    expect((await login('203.0.113.7', TEST_AUTH.adminPassword)).status).toBe(429);
    expect((await login('203.0.113.8', TEST_AUTH.adminPassword)).status).toBe(200);
  });

  it('builds @id from the forwarded scheme and host', async () => {
    const result = await call(`${proxied.url}/api/v1/events`, {
      method: 'POST',
      headers: { ...ADMIN, 'x-forwarded-proto': 'https', 'x-forwarded-host': 'events.example.org' },
      json: valid,
    });
    const body = result.body as { '@id': string; identifier: string };
    expect(body['@id']).toBe(`https://events.example.org/api/v1/events/${body.identifier}`);
  });

  it('ignores forwarded headers from an untrusted peer', async () => {
    const result = await call(events, {
      method: 'POST',
      headers: { ...ADMIN, 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example' },
      json: valid,
    });
    expect((result.body as { '@id': string })['@id']).toMatch(/^http:\/\/127\.0\.0\.1:\d+\//);
  });
});
