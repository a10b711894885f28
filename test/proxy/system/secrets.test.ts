import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, waitForPort } from '../../../harness/ports.js';
import { createTestDatabase, type TestDatabase } from '../../support/postgres.js';
import { runCli, startCli, waitForHttp } from '../../support/processes.js';
import { WatchedProcess } from '../../../harness/child-process.js';
import { ProxyProcess } from '../../../harness/proxy-process.js';

/**
 * Known secrets given to a `togather serve` app and a `togather proxy` in
 * front of it (admin keys, JWT secret, admin password, database, Redis and
 * slot URL passwords), then every route, error and failure path that might
 * echo them exercised: none may appear in any log line, answer body or
 * header, /admin/status, /admin/history, either /metrics, or the CLI output.
 */

const SECRETS = {
  proxyAdminKey: 'proxy-admin-key-S3CRET-0a1b2c3d4e5f6a7b8c9d',
  appAdminKey: 'app-admin-key-S3CRET-9f8e7d6c5b4a39281706',
  jwtSecret: `jwt-secret-S3CRET-${'7c2f'.repeat(14)}`,
  adminPassword: 'admin-password-S3CRET-41d9',
  databasePassword: 'pg-password-S3CRET-55aa',
  redisPassword: 'redis-password-S3CRET-77bb',
  slotPassword: 'slot-password-S3CRET-99cc',
};

/** The part every secret above shares, so partial echoes are caught too. */
const MARKER = 'S3CRET';

interface Seen {
  what: string;
  text: string;
}

const seen: Seen[] = [];

function exchange(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers = { ...options.headers };
    if (options.body !== undefined)
      headers['content-length'] = String(Buffer.byteLength(options.body));
    const req = request(url, { method: options.method ?? 'GET', headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        const head = Object.entries(res.headers)
          .map(([name, value]) => `${name}: ${String(value)}`)
          .join('\n');
        seen.push({
          what: `${options.method ?? 'GET'} ${url} -> ${res.statusCode}`,
          text: `${head}\n\n${text}`,
        });
        resolve({ status: res.statusCode ?? 0, text });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

let database: TestDatabase;
let redis: WatchedProcess;
let redisPort: number;
let app: WatchedProcess;
let appPort: number;
let appMetricsPort: number;
let proxy: ProxyProcess;

beforeAll(async () => {
  database = await createTestDatabase();
  redisPort = await freePort();
  redis = new WatchedProcess(
    'redis-server',
    spawn(
      'redis-server',
      [
        '--port',
        String(redisPort),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--requirepass',
        SECRETS.redisPassword,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    ),
  );
  await waitForPort(redisPort);

  appPort = await freePort();
  appMetricsPort = await freePort();
  const databaseUrl = new URL(database.url);
  databaseUrl.password = SECRETS.databasePassword;
  app = startCli(['serve', '--migrate'], {
    ENVIRONMENT: 'production',
    SERVER_HOST: '127.0.0.1',
    SERVER_PORT: String(appPort),
    METRICS_PORT: String(appMetricsPort),
    SLOT: 'blue',
    DATABASE_URL: databaseUrl.toString(),
    JWT_SECRET: SECRETS.jwtSecret,
    ADMIN_API_KEY: SECRETS.appAdminKey,
    ADMIN_USERNAME: 'operator',
    ADMIN_PASSWORD: SECRETS.adminPassword,
    LOG_LEVEL: 'debug',
  });
  await app.waitFor(/togather serve listening/, 30_000);

  const slotUrl = `http://slot:${SECRETS.slotPassword}@127.0.0.1:${appPort}`;
  proxy = await ProxyProcess.start({
    blueUrl: slotUrl,
    greenUrl: slotUrl,
    redisUrl: `redis://:${SECRETS.redisPassword}@127.0.0.1:${redisPort}`,
    keyPrefix: 'relsecrets:',
    env: { ADMIN_API_KEY: SECRETS.proxyAdminKey, LOG_LEVEL: 'debug', ACCESS_LOG: 'on' },
  });
  await waitForHttp(`${proxy.url}/healthz`);
});

afterAll(async () => {
  await proxy?.stop();
  await app?.stop();
  await redis?.stop();
  await database?.drop();
});

describe('secrets', () => {
  it('appear in no answer, status, history, metrics, log line or CLI output', async () => {
    const api = proxy.url;
    const admin = (method: string, path: string, key = SECRETS.proxyAdminKey, body?: string) =>
      exchange(`${proxy.adminUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${key}`,
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
        ...(body ? { body } : {}),
      });

    // The app, through the proxy.
    for (const path of ['/health', '/healthz', '/readyz', '/version', '/metrics', '/nope']) {
      await exchange(`${api}${path}`);
    }
    // The app's own /metrics, on its internal listener.
    expect((await exchange(`http://127.0.0.1:${appMetricsPort}/metrics`)).status).toBe(200);
    const login = (password: string) =>
      exchange(`${api}/api/v1/admin/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'operator', password }),
      });
    expect((await login(`${SECRETS.adminPassword}x`)).status).toBe(401);
    const loggedIn = await login(SECRETS.adminPassword);
    expect(loggedIn.status).toBe(200);
    const token = (JSON.parse(loggedIn.text) as { access_token: string }).access_token;
    // The token is the client's to see; it is checked separately below.
    seen.pop();
    const event = JSON.stringify({ name: 'Secrets meetup', startDate: '2030-01-01T18:00:00Z' });
    const post = (authorization: string, body = event) =>
      exchange(`${api}/api/v1/events`, {
        method: 'POST',
        headers: { authorization, 'content-type': 'application/json' },
        body,
      });
    expect((await post(`Bearer ${SECRETS.appAdminKey}`)).status).toBe(201);
    expect((await post(`Bearer ${token}`)).status).toBe(201);
    expect((await post(`Bearer ${SECRETS.appAdminKey}x`)).status).toBe(401);
    expect((await post(`Bearer ${SECRETS.proxyAdminKey}`)).status).toBe(401);
    expect((await post(`Bearer ${SECRETS.appAdminKey}`, '{"name": ')).status).toBe(400);
    expect((await post(`Bearer ${SECRETS.appAdminKey}`, '{"name": 5}')).status).toBe(400);
    await exchange(`${api}/api/v1/events?limit=abc`);
    // A client that puts a key in the query string: no log may keep it.
    await exchange(`${api}/api/v1/events?api_key=${SECRETS.appAdminKey}`);
    await exchange(`${api}/nope?token=${SECRETS.proxyAdminKey}`);

    // The proxy's admin API.
    expect((await admin('GET', '/admin/status')).status).toBe(200);
    expect((await admin('POST', '/admin/switch?slot=green')).status).toBe(200);
    expect(
      (await admin('POST', '/admin/switch?slot=green', `${SECRETS.proxyAdminKey}x`)).status,
    ).toBe(401);
    expect((await admin('POST', '/admin/switch?slot=green', SECRETS.appAdminKey)).status).toBe(401);
    expect(
      (await admin('POST', '/admin/switch', SECRETS.proxyAdminKey, '{"slot": "purple"}')).status,
    ).toBe(400);
    expect((await admin('GET', '/admin/history?limit=100')).status).toBe(200);
    expect((await admin('GET', '/metrics')).status).toBe(200);
    expect((await admin('GET', '/admin/nope')).status).toBe(404);

    // The admin CLI, right key and wrong key.
    const cliEnv = { ADMIN_URL: proxy.adminUrl, ADMIN_API_KEY: SECRETS.proxyAdminKey };
    for (const args of [['status', '--json'], ['status'], ['switch', 'blue'], ['rollback']]) {
      const result = await runCli(args, cliEnv);
      seen.push({ what: `togather ${args.join(' ')}`, text: result.stdout + result.stderr });
    }
    const wrong = await runCli(['status'], {
      ...cliEnv,
      ADMIN_API_KEY: `${SECRETS.proxyAdminKey}x`,
    });
    expect(wrong.code).not.toBe(0);
    seen.push({ what: 'togather status (wrong key)', text: wrong.stdout + wrong.stderr });

    // Both processes' logs, after everything above.
    await new Promise((r) => setTimeout(r, 200));
    seen.push({ what: 'proxy output', text: proxy.output });
    seen.push({ what: 'app output', text: app.stdout + app.stderr });
    expect(proxy.output).toContain('"msg":"admin request"');
    expect(app.stdout).toContain('admin login failed');

    const leaks = seen
      .filter((s) => s.text.includes(MARKER))
      .map(
        (s) =>
          `${s.what}: ${s.text
            .split('\n')
            .filter((l) => l.includes(MARKER))
            .join(' | ')
            .slice(0, 600)}`,
      );
    expect(leaks).toEqual([]);
    expect(token).not.toContain(MARKER);
  });

  it('keep out of start-up failures that name the unreachable store or database', async () => {
    const deadRedis = await freePort();
    const proxyFailure = await runCli(['proxy'], {
      PROXY_HOST: '127.0.0.1',
      PROXY_PORT: String(await freePort()),
      ADMIN_PORT: String(await freePort()),
      ADMIN_API_KEY: SECRETS.proxyAdminKey,
      BLUE_URL: `http://slot:${SECRETS.slotPassword}@127.0.0.1:1`,
      GREEN_URL: 'http://127.0.0.1:2',
      REDIS_URL: `redis://:${SECRETS.redisPassword}@127.0.0.1:${deadRedis}`,
    });
    expect(proxyFailure.code).toBe(1);
    expect(proxyFailure.stderr).toContain('cannot start the proxy');
    // The app starts without its database and reports it failing in /health.
    const deadAppPort = await freePort();
    const appWithoutDatabase = startCli(['serve'], {
      ENVIRONMENT: 'production',
      SERVER_HOST: '127.0.0.1',
      SERVER_PORT: String(deadAppPort),
      METRICS_PORT: String(await freePort()),
      DATABASE_URL: `postgres://postgres:${SECRETS.databasePassword}@127.0.0.1:${deadRedis}/nowhere`,
      JWT_SECRET: SECRETS.jwtSecret,
      ADMIN_API_KEY: SECRETS.appAdminKey,
      ADMIN_PASSWORD: SECRETS.adminPassword,
      LOG_LEVEL: 'debug',
    });
    let health: { status: number; text: string };
    try {
      await appWithoutDatabase.waitFor(/togather serve listening/, 30_000);
      health = await exchange(`http://127.0.0.1:${deadAppPort}/health`);
      await exchange(`http://127.0.0.1:${deadAppPort}/api/v1/events`);
    } finally {
      await appWithoutDatabase.stop();
    }
    expect(health.status).toBe(503);
    const appFailure = { stdout: appWithoutDatabase.stdout, stderr: appWithoutDatabase.stderr };
    const bad = await runCli(['proxy'], {
      ADMIN_API_KEY: 'short-S3CRET',
      REDIS_URL: `http://:${SECRETS.redisPassword}@x`,
    });
    expect(bad.code).toBe(2);
    for (const [what, result] of [
      ['proxy start-up', proxyFailure],
      ['app without its database', appFailure],
      ['bad configuration', bad],
    ] as const) {
      expect(`${result.stdout}${result.stderr}`, what).not.toContain(MARKER);
    }
    const leaks = seen.filter((s) => s.text.includes(MARKER)).map((s) => s.what);
    expect(leaks).toEqual([]);
  });
});
