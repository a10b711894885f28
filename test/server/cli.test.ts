import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildInfo } from '../../common/build-info.js';
import { createLogger } from '../../common/logger.js';
import { openPostgres } from '../../server/database.js';
import { slotHealthUrl } from '../../server/healthcheck.js';
import { loadMigrations } from '../../server/migrate.js';
import { closedPort, freePort } from '../../harness/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { runCli, startCli } from '../support/processes.js';
import {
  call,
  postgresBackend,
  startTestApp,
  type TestApp,
  type TestBackend,
} from '../support/server.js';
import { WatchedProcess } from '../../harness/child-process.js';

let backend: TestBackend;
let tmp: string;
const closers: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  backend = await postgresBackend();
  tmp = await mkdtemp(join(tmpdir(), 'togather-server-cli-'));
});

afterAll(async () => {
  for (const close of closers.reverse()) await close();
  await backend?.close();
  await rm(tmp, { recursive: true, force: true });
});

/** A plain HTTP server answering every request with handler's status and body. */
async function fakeServer(handler: () => { status: number; body: string }): Promise<string> {
  const server: Server = createHttpServer((_req, res) => {
    const { status, body } = handler();
    res.writeHead(status, { 'content-type': 'application/json' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise((resolve) => server.close(resolve)));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no address');
  return `http://127.0.0.1:${address.port}/health`;
}

/** `serve`'s environment for ENVIRONMENT=test on free loopback ports (app and metrics), plus `extra`. */
async function serveEnv(extra: Record<string, string>) {
  const port = await freePort();
  const metricsPort = await freePort();
  const env: Record<string, string> = {
    ENVIRONMENT: 'test',
    SERVER_HOST: '127.0.0.1',
    SERVER_PORT: String(port),
    METRICS_PORT: String(metricsPort),
    ...extra,
  };
  return { port, metricsPort, env };
}

describe('togather healthcheck', () => {
  let healthy: TestApp;

  beforeAll(async () => {
    healthy = await startTestApp({ database: backend.db });
    closers.push(() => healthy.close());
  });

  it('exits 0 on a healthy app', async () => {
    const result = await runCli(['healthcheck', '--url', `${healthy.url}/health`]);
    expect(result.code).toBe(0);
    // The package version (app_version), not the commit the contract calls version.
    expect(result.stdout).toBe(`healthy: slot blue, version ${buildInfo().version}\n`);
  });

  it('without --url checks the app at SERVER_HOST:SERVER_PORT, wildcard hosts on loopback', async () => {
    const port = new URL(healthy.url).port;
    for (const host of [undefined, '0.0.0.0', '::', '127.0.0.1']) {
      const result = await runCli(['healthcheck'], {
        SERVER_PORT: port,
        ...(host ? { SERVER_HOST: host } : {}),
      });
      expect(result.stderr, String(host)).toBe('');
      expect(result.stdout).toMatch(/^healthy: slot blue, version \S+\n$/);
      expect(result.code).toBe(0);
    }
  });

  it('without --url, where /app/server recorded `proxy`, checks the proxy’s /healthz on ADMIN_PORT', async () => {
    const paths: string[] = [];
    const proxy: Server = createHttpServer((req, res) => {
      paths.push(req.url ?? '');
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise((resolve) => proxy.close(resolve)));
    const adminPort = String((proxy.address() as { port: number }).port);
    const commandFile = join(tmp, 'togather-command');
    await writeFile(commandFile, 'proxy\n');
    const env = { TOGATHER_COMMAND_FILE: commandFile, ADMIN_PORT: adminPort, SERVER_PORT: '1' };
    const result = await runCli(['healthcheck'], env);
    expect(result).toEqual({ code: 0, stdout: 'ok\n', stderr: '' });
    expect(paths).toEqual(['/healthz']);

    const bad = await runCli(['healthcheck'], { ...env, ADMIN_PORT: 'nine' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('togather: ADMIN_PORT is not a port: "nine"\n');
    // `serve` recorded, or no file: the app, as before.
    await writeFile(commandFile, 'serve\n');
    const app = await runCli(['healthcheck'], { ...env, SERVER_PORT: new URL(healthy.url).port });
    expect(app.code).toBe(0);
    expect(app.stdout).toMatch(/^healthy: /);
  });

  it('exits 0 on a degraded app', async () => {
    const [first] = await loadMigrations();
    const degraded = await startTestApp({
      database: backend.db,
      migrations: [{ ...first!, checksum: 'edited' }],
    });
    closers.push(() => degraded.close());
    const result = await runCli(['healthcheck', '--url', `${degraded.url}/health`]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      /^degraded: slot blue, version \S+; migrations warn: applied migration files changed since: 0001_create_events\n$/,
    );
  });

  it('exits 1 on an unhealthy app (database unreachable)', async () => {
    const port = await closedPort();
    const db = openPostgres(`postgres://x@127.0.0.1:${port}/x`, 1, {
      logger: createLogger({ level: 'silent' }),
    });
    const unhealthy = await startTestApp({ database: db });
    closers.push(async () => {
      await unhealthy.close();
      await db.close();
    });
    const result = await runCli(['healthcheck', '--url', `${unhealthy.url}/health`]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(
      new RegExp(
        `^unhealthy \\(HTTP 503\\): slot blue, version \\S+; database fail: postgres unreachable: connect ECONNREFUSED 127\\.0\\.0\\.1:${port}; migrations fail: .+\\n$`,
      ),
    );
  });

  it('exits 1 when nothing listens, and when the answer does not come in time', async () => {
    const port = await closedPort();
    const refused = await runCli(['healthcheck', '--url', `http://127.0.0.1:${port}/health`]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(`unreachable: http://127.0.0.1:${port}/health: ECONNREFUSED\n`);

    const sockets: Socket[] = [];
    const silent = createNetServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    closers.push(async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    });
    const address = silent.address();
    if (!address || typeof address === 'string') throw new Error('no address');
    const url = `http://127.0.0.1:${address.port}/health`;
    const timedOut = await runCli(['healthcheck', '--url', url, '--timeout', '300ms']);
    expect(timedOut.code).toBe(1);
    expect(timedOut.stderr).toBe(`unreachable: no answer from ${url} within 300 ms\n`);
  });

  it('exits 2 when the answer cannot be read', async () => {
    const html = await fakeServer(() => ({ status: 200, body: '<html>hello</html>' }));
    const notJson = await runCli(['healthcheck', '--url', html]);
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toBe('unreadable answer: HTTP 200, not JSON\n');

    const other = await fakeServer(() => ({ status: 200, body: '{"ok":true}' }));
    const noStatus = await runCli(['healthcheck', '--url', other]);
    expect(noStatus.code).toBe(2);
    expect(noStatus.stderr).toBe('unreadable answer: HTTP 200 without a health status\n');

    const notFound = await runCli(['healthcheck', '--url', `${healthy.url}/nothing-here`]);
    expect(notFound.code).toBe(2);
  });

  it('retries until healthy', async () => {
    let calls = 0;
    const flaky = await fakeServer(() =>
      ++calls < 3
        ? { status: 503, body: '{"status":"unhealthy"}' }
        : { status: 200, body: '{"status":"healthy"}' },
    );
    const result = await runCli([
      'healthcheck',
      '--url',
      flaky,
      '--retries',
      '4',
      '--retry-delay',
      '50ms',
    ]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe(
      'attempt 1: unhealthy (HTTP 503)\nattempt 2: unhealthy (HTTP 503)\n',
    );
    expect(result.stdout).toBe('healthy\n');
    expect(calls).toBe(3);
  });

  it('gives up after the retries with the last answer', async () => {
    const down = await fakeServer(() => ({ status: 503, body: '{"status":"shutting_down"}' }));
    const result = await runCli([
      'healthcheck',
      '--url',
      down,
      '--retries',
      '1',
      '--retry-delay',
      '10',
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('attempt 1: shutting_down (HTTP 503)\nshutting_down (HTTP 503)\n');
  });

  it('maps --slot to the slot port on localhost', () => {
    expect(slotHealthUrl('blue')).toBe('http://127.0.0.1:8081/health');
    expect(slotHealthUrl('green')).toBe('http://127.0.0.1:8082/health');
  });

  it('exits 2 on bad flags', async () => {
    const slot = await runCli(['healthcheck', '--slot', 'red']);
    expect(slot.code).toBe(2);
    expect(slot.stderr).toBe('togather: --slot must be blue or green, not "red"\n');
    const both = await runCli(['healthcheck', '--slot', 'blue', '--url', 'http://x/health']);
    expect(both.code).toBe(2);
    expect(both.stderr).toBe('togather: give --url or --slot, not both\n');
    const timeout = await runCli(['healthcheck', '--timeout', 'soon']);
    expect(timeout.code).toBe(2);
    expect(timeout.stderr).toContain(
      "option '--timeout <duration>' argument 'soon' is invalid. use 500ms, 30s, 2m or plain milliseconds",
    );
    const url = await runCli(['healthcheck', '--url', 'ftp://x/health']);
    expect(url.code).toBe(2);
  });
});

describe('togather serve', () => {
  const running: WatchedProcess[] = [];
  afterAll(async () => {
    for (const p of running) await p.stop('SIGKILL');
  });

  it('exits 2 on bad configuration, listing every bad variable, without a stack trace', async () => {
    const result = await runCli(['serve'], {
      ENVIRONMENT: 'production',
      SERVER_PORT: 'eighty',
      JWT_SECRET: 'too-short',
      LOG_LEVEL: 'loud',
      SLOT: 'red',
      DATABASE_URL: 'mysql://db/x',
      GRACEFUL_SHUTDOWN_TIMEOUT_SECONDS: '-1',
      ADMIN_API_KEY: 'change-me-change-me-change-me-change-me',
    });
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      [
        'togather: invalid configuration:',
        '  - DATABASE_URL: must be a postgres:// or postgresql:// URL',
        '  - LOG_LEVEL: Invalid option: expected one of "fatal"|"error"|"warn"|"info"|"debug"|"trace"|"silent"',
        '  - SERVER_PORT: Invalid input: expected number, received NaN',
        '  - SLOT: Invalid option: expected one of "blue"|"green"',
        '  - JWT_SECRET: must be at least 64 characters',
        '  - GRACEFUL_SHUTDOWN_TIMEOUT_SECONDS: Too small: expected number to be >=0',
        '',
      ].join('\n'),
    );
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('refuses to start in production without real secrets', async () => {
    const missing = await runCli(['serve'], {});
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(
      [
        'togather: invalid configuration:',
        '  - JWT_SECRET: is required when ENVIRONMENT=production (at least 64 characters; only development and test generate one)',
        '  - ADMIN_API_KEY: is required when ENVIRONMENT=production (at least 32 characters; only development and test generate one)',
        '  - ADMIN_PASSWORD: is required when ENVIRONMENT=production (at least 12 characters; only development and test generate one)',
        '',
      ].join('\n'),
    );
    const placeholder = await runCli(['serve'], {
      JWT_SECRET: 'x'.repeat(64),
      ADMIN_API_KEY: 'your-api-key-goes-here-at-least-32-chars',
      ADMIN_PASSWORD: 'a-real-password-1',
    });
    expect(placeholder.code).toBe(2);
    expect(placeholder.stderr).toBe(
      [
        'togather: invalid configuration:',
        '  - JWT_SECRET: looks like a placeholder; set a real secret when ENVIRONMENT=production',
        '  - ADMIN_API_KEY: looks like a placeholder; set a real secret when ENVIRONMENT=production',
        '',
      ].join('\n'),
    );
  });

  it('in development generates the secrets, prints the admin key once, and serves /health on PGlite', async () => {
    const port = await freePort();
    const dataDir = join(tmp, 'dev-data');
    const child = startCli(['serve', '--migrate'], {
      ENVIRONMENT: 'development',
      SERVER_HOST: '127.0.0.1',
      SERVER_PORT: String(port),
      METRICS_PORT: String(await freePort()),
      DATA_DIR: dataDir,
    });
    running.push(child);
    await child.waitFor(/togather serve listening/, 30_000);
    const key = /^ {2}ADMIN_API_KEY=(\S+)$/m.exec(child.stdout)?.[1];
    expect(key).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const health = await call(`http://127.0.0.1:${port}/health`);
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({
      status: 'healthy',
      slot: null,
      checks: { database: { status: 'pass', message: 'pglite reachable' } },
    });
    const created = await call(`http://127.0.0.1:${port}/api/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}` },
      json: { name: 'Dev event', startDate: '2030-01-01T00:00:00Z' },
    });
    expect(created.status).toBe(201);
    const exit = await child.stop('SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    expect(child.stdout.split(key!).length - 1).toBe(1);
    expect(child.stderr).not.toContain(key!);
    expect(child.stdout).toContain('"msg":"using embedded PGlite: single process only');
  });

  it('does not migrate without --migrate: /health fails on a schema that is behind', async () => {
    const fresh: TestDatabase = await createTestDatabase();
    closers.push(() => fresh.drop());
    const { port, metricsPort, env } = await serveEnv({
      DATABASE_URL: fresh.url,
      DATABASE_POOL_MAX: '2',
      SLOT: 'blue',
    });
    const child = startCli(['serve'], env);
    running.push(child);
    await child.waitFor(/togather serve listening/);
    expect(child.stdout).toContain('database schema is behind this build');
    const health = await call(`http://127.0.0.1:${port}/health`);
    expect(health.status).toBe(503);
    expect(health.body).toMatchObject({
      status: 'unhealthy',
      slot: 'blue',
      checks: {
        database: { status: 'pass' },
        migrations: {
          status: 'fail',
          message:
            'schema is behind this build: 2 pending (0001_create_events, 0002_create_places_and_organizations); run togather migrate up',
        },
      },
    });
    const metrics = await call(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(metrics.text).toMatch(/^togather_db_pool_max_connections 2$/m);
    expect(await child.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });

  it('on embedded PGlite applies the migrations at start, without --migrate: /health is 200', async () => {
    const { port, env } = await serveEnv({ DATA_DIR: join(tmp, 'pglite-no-flag') });
    const child = startCli(['serve'], env);
    running.push(child);
    await child.waitFor(/togather serve listening/, 30_000);
    const migrated = child.stdout
      .split('\n')
      .filter((line) => line.includes('"msg":"migrations up to date"'))
      .map((line) => JSON.parse(line) as { applied: string[]; reason: string });
    expect(migrated).toEqual([
      {
        ...migrated[0],
        applied: ['0001_create_events', '0002_create_places_and_organizations'],
        reason: 'pglite',
      },
    ]);
    const health = await call(`http://127.0.0.1:${port}/health`);
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({
      status: 'healthy',
      checks: { database: { status: 'pass' }, migrations: { status: 'pass' } },
    });
    expect(await child.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });

  it('serves /metrics on METRICS_PORT only, and says where', async () => {
    const { port, metricsPort, env } = await serveEnv({
      DATABASE_URL: backend.url!,
      SLOT: 'green',
    });
    const child = startCli(['serve'], env);
    running.push(child);
    await child.waitFor(/togather serve listening/);
    expect(child.stdout).toContain(
      `togather serve listening on http://127.0.0.1:${port} (metrics on http://127.0.0.1:${metricsPort}/metrics)`,
    );
    const metrics = await call(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.text).toMatch(/^togather_app_info\{.*slot="green"\} 1$/m);
    const onAppPort = await call(`http://127.0.0.1:${port}/metrics`);
    expect(onAppPort.status).toBe(404);
    expect(onAppPort.body).toMatchObject({ status: 404, detail: 'no route for GET /metrics' });
    expect(await child.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });

  it('METRICS_PORT: a bad value, or the app port itself, exits 2 naming it', async () => {
    const env = { ENVIRONMENT: 'test', DATABASE_URL: backend.url! };
    for (const [value, problem] of [
      ['ninety', 'Invalid input: expected number, received NaN'],
      ['70000', 'Too big: expected number to be <=65535'],
      ['-1', 'Too small: expected number to be >=0'],
      ['94.64', 'Invalid input: expected int, received number'],
    ]) {
      const result = await runCli(['serve'], { ...env, METRICS_PORT: value! });
      expect(result.code, value).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr).toBe(
        `togather: invalid configuration:\n  - METRICS_PORT: ${problem}\n`,
      );
    }
    const same = await runCli(['serve'], { ...env, SERVER_PORT: '8181', METRICS_PORT: '8181' });
    expect(same.code).toBe(2);
    expect(same.stderr).toBe(
      'togather: invalid configuration:\n  - METRICS_PORT: is SERVER_PORT (8181) too; the metrics listener needs a port of its own\n',
    );
  });

  for (const taken of ['SERVER_PORT', 'METRICS_PORT'] as const) {
    it(`exits 1 with the reason when ${taken} is taken, and leaves nothing listening`, async () => {
      const ports = { SERVER_PORT: await freePort(), METRICS_PORT: await freePort() };
      const blocker = createNetServer();
      await new Promise<void>((resolve) => blocker.listen(ports[taken], '127.0.0.1', resolve));
      closers.push(() => new Promise((resolve) => blocker.close(resolve)));
      const result = await runCli(['serve'], {
        ENVIRONMENT: 'test',
        SERVER_HOST: '127.0.0.1',
        SERVER_PORT: String(ports.SERVER_PORT),
        METRICS_PORT: String(ports.METRICS_PORT),
        DATABASE_URL: backend.url!,
      });
      expect(result.code).toBe(1);
      const purpose = taken === 'METRICS_PORT' ? ' for /metrics (METRICS_PORT)' : '';
      expect(result.stderr).toBe(
        `togather: cannot listen on 127.0.0.1:${ports[taken]}${purpose}: EADDRINUSE\n`,
      );
      const other = taken === 'METRICS_PORT' ? ports.SERVER_PORT : ports.METRICS_PORT;
      await expect(fetch(`http://127.0.0.1:${other}/`)).rejects.toThrow();
    });
  }
});

describe('togather snapshot', () => {
  const snapshotEnv = (extra: Record<string, string> = {}) => ({
    DATABASE_URL: backend.url!,
    SNAPSHOT_DIR: join(tmp, 'snapshots'),
    ...extra,
  });

  it('creates a gzip pg_dump with its metadata, lists and cleans up expired ones', async () => {
    await backend.db.query(
      `INSERT INTO events (name, start_date) VALUES ('In the snapshot', '2030-01-01T00:00:00Z')`,
    );
    const created = await runCli(
      ['snapshot', 'create', '--reason', 'pre-deploy', '--json'],
      snapshotEnv(),
    );
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const meta = JSON.parse(created.stdout) as Record<string, unknown>;
    const dir = join(tmp, 'snapshots');
    const dbLabel = `127.0.0.1:5432/${new URL(backend.url!).pathname.slice(1)}`;
    expect(meta).toEqual({
      file: expect.stringMatching(
        /^togather-togather_test_[0-9a-f]+-\d{8}T\d{6}Z-[0-9a-f]{6}\.sql\.gz$/,
      ),
      reason: 'pre-deploy',
      created_at: expect.any(String),
      expires_at: expect.any(String),
      database: dbLabel,
      size: expect.any(Number),
      dir,
    });
    const days =
      (Date.parse(meta.expires_at as string) - Date.parse(meta.created_at as string)) / 86_400_000;
    expect(days).toBe(7);
    const dump = await readFile(join(dir, meta.file as string));
    expect(dump.length).toBe(meta.size);
    const sql = gunzipSync(dump).toString('utf8');
    expect(sql).toContain('CREATE TABLE public.events');
    expect(sql).toContain('In the snapshot');
    const { dir: _dir, ...stored } = meta;
    expect(
      JSON.parse(await readFile(join(dir, `${meta.file as string}.meta.json`), 'utf8')),
    ).toEqual(stored);

    const second = await runCli(['snapshot', 'create', '--retention-days', '1'], snapshotEnv());
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/^created .+\.sql\.gz \(\d+ bytes, expires \S+\)\n$/);

    const listed = await runCli(['snapshot', 'list', '--json'], snapshotEnv());
    const list = JSON.parse(listed.stdout) as Array<{ file: string; reason: string }>;
    expect(list.map((s) => s.reason)).toEqual(['pre-deploy', 'manual']);
    const human = await runCli(['snapshot', 'list'], snapshotEnv());
    expect(human.stdout.trim().split('\n')).toHaveLength(2);

    // Age the first one past its retention.
    const metaFile = join(dir, `${list[0]!.file}.meta.json`);
    const aged = {
      ...JSON.parse(await readFile(metaFile, 'utf8')),
      expires_at: '2000-01-01T00:00:00.000Z',
    };
    await writeFile(metaFile, JSON.stringify(aged));
    const cleaned = await runCli(['snapshot', 'cleanup'], snapshotEnv());
    expect(cleaned.code).toBe(0);
    expect(cleaned.stdout).toBe(`removed ${list[0]!.file}\n1 removed, 1 kept\n`);
    const left = (await readdir(dir)).sort();
    expect(left).toEqual([list[1]!.file, `${list[1]!.file}.meta.json`].sort());
  });

  it('fails clearly when the database is unreachable, leaving no partial file', async () => {
    const port = await freePort();
    const dir = join(tmp, 'snapshots-unreachable');
    const result = await runCli(['snapshot', 'create'], {
      DATABASE_URL: `postgres://togather:pw-not-shown@127.0.0.1:${port}/sel`,
      SNAPSHOT_DIR: dir,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      new RegExp(
        `^togather: database 127\\.0\\.0\\.1:${port}/sel is unreachable: connection to server at "127\\.0\\.0\\.1", port ${port} failed: Connection refused\\n$`,
      ),
    );
    expect(result.stderr).not.toContain('pw-not-shown');
    expect(await readdir(dir)).toEqual([]);
  });

  it('hands pg_dump a password given as ?password= through PGPASSWORD, not on its command line', async () => {
    // A stand-in pg_dump that records what it was given, as `ps` would show it.
    const bin = join(tmp, 'fake-bin');
    const seen = join(tmp, 'pg_dump-seen.json');
    await mkdir(bin, { recursive: true });
    await writeFile(
      join(bin, 'pg_dump'),
      `#!${process.execPath}\nrequire('node:fs').writeFileSync(${JSON.stringify(seen)}, JSON.stringify({ args: process.argv.slice(2), password: process.env.PGPASSWORD }));\nprocess.stdout.write('-- dump\\n');\n`,
      { mode: 0o755 },
    );
    const result = await runCli(['snapshot', 'create', '--json'], {
      DATABASE_URL: 'postgres://togather@127.0.0.1:5432/sel?password=qp-secret&sslmode=disable',
      SNAPSHOT_DIR: join(tmp, 'snapshots-query-password'),
      PATH: `${bin}:${process.env.PATH ?? ''}`,
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const given = JSON.parse(await readFile(seen, 'utf8')) as { args: string[]; password: string };
    expect(given.password).toBe('qp-secret');
    expect(given.args).toEqual([
      '--no-owner',
      '--no-privileges',
      '--format=plain',
      '--dbname=postgres://togather@127.0.0.1:5432/sel?sslmode=disable',
    ]);
    expect(result.stdout).not.toContain('qp-secret');
  });

  it('fails clearly when pg_dump is missing', async () => {
    const result = await runCli(['snapshot', 'create'], {
      ...snapshotEnv({ SNAPSHOT_DIR: join(tmp, 'snapshots-nodump') }),
      PATH: '/nonexistent',
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      'togather: pg_dump not found: install the PostgreSQL client tools (e.g. apt-get install postgresql-client)\n',
    );
  });

  it('needs DATABASE_URL, and a positive --retention-days', async () => {
    const noUrl = await runCli(['snapshot', 'create'], { SNAPSHOT_DIR: join(tmp, 'x') });
    expect(noUrl.code).toBe(1);
    expect(noUrl.stderr).toBe(
      'togather: snapshot create needs DATABASE_URL (PostgreSQL); embedded PGlite data is the DATA_DIR directory itself\n',
    );
    const badDays = await runCli(['snapshot', 'create', '--retention-days', '-3'], snapshotEnv());
    expect(badDays.code).toBe(2);
    const empty = await runCli(['snapshot', 'list'], { SNAPSHOT_DIR: join(tmp, 'none') });
    expect(empty.stdout).toBe(`no snapshots in ${join(tmp, 'none')}\n`);
  });
});
