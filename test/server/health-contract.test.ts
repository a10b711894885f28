import { createServer, type Server, type Socket } from 'node:net';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { buildInfo } from '../../common/build-info.js';
import { createLogger } from '../../common/logger.js';
import { probeHealth } from '../../proxy/admin/health-gate.js';
import { openPostgres } from '../../server/database.js';
import { commitVersion, formatLatency, UNKNOWN_COMMIT } from '../../server/health.js';
import { checkOnce } from '../../server/healthcheck.js';
import { httpEndpointCheck } from '../../server/http-endpoint-check.js';
import { Lifecycle } from '../../server/lifecycle.js';
import { checksumOf, loadMigrations, migrationLabel } from '../../server/migrate.js';
import healthSchema from '../../server/schemas/health-response.schema.json' with { type: 'json' };
import { closedPort } from '../../harness/ports.js';
import { call, startTestApp, appBefore } from '../support/server.js';

const ajv = new Ajv2020({ allErrors: true });
addFormats.default(ajv);
const validate = ajv.compile(healthSchema);

/** Asserts the answer meets the Togather health contract's schema, and returns it. */
function contract(body: unknown): Record<string, unknown> & {
  status: string;
  checks: Record<
    string,
    {
      status: string;
      message: string;
      latency: string;
      latency_ms: number;
      details?: Record<string, unknown>;
    }
  >;
} {
  expect(validate(body), JSON.stringify(validate.errors)).toBe(true);
  return body as ReturnType<typeof contract>;
}

const migrations = await loadMigrations();
const latest = migrations[migrations.length - 1]!;
const tested = appBefore();

describe('the health contract schema (server/schemas/health-response.schema.json)', () => {
  it('accepts a healthy answer: 200, every required check passing', async () => {
    const result = await call(`${tested.url}/health`);
    expect(result.status).toBe(200);
    const report = contract(result.body);
    expect(report.status).toBe('healthy');
    expect(report.version).toBe(commitVersion(buildInfo().git_commit));
    expect(report.app_version).toBe(buildInfo().version);
    expect(Object.keys(report.checks)).toEqual(['database', 'migrations', 'http_endpoint']);
    for (const check of Object.values(report.checks)) expect(check.status).toBe('pass');
    expect(report.checks.migrations!.details).toEqual({
      version: latest.version,
      dirty: false,
      expected_version: latest.version,
      pending: [],
    });
  });

  it('accepts a degraded answer: 200, a check warning', async () => {
    const edited = await startTestApp({
      database: tested.db,
      migrations: migrations.map((m, i) => (i === 0 ? { ...m, checksum: 'edited' } : m)),
    });
    try {
      const result = await call(`${edited.url}/health`);
      expect(result.status).toBe(200);
      const report = contract(result.body);
      expect(report.status).toBe('degraded');
      expect(report.checks.migrations).toMatchObject({
        status: 'warn',
        message: `applied migration files changed since: ${migrationLabel(migrations[0]!)}`,
      });
    } finally {
      await edited.close();
    }
  });

  it('accepts a failing database: 503 unhealthy, migrations unknown (null), pool figures kept', async () => {
    const port = await closedPort();
    const db = openPostgres(`postgres://x@127.0.0.1:${port}/x`, 3, {
      logger: createLogger({ level: 'silent' }),
      connectTimeoutMs: 1000,
    });
    const down = await startTestApp({ database: db });
    try {
      const result = await call(`${down.url}/health`);
      expect(result.status).toBe(503);
      const report = contract(result.body);
      expect(report.status).toBe('unhealthy');
      expect(report.checks.database).toMatchObject({
        status: 'fail',
        message: `postgres unreachable: connect ECONNREFUSED 127.0.0.1:${port}`,
        details: { kind: 'postgres', pool_size: 3, idle: 0, waiting: 0 },
      });
      expect(report.checks.migrations).toMatchObject({
        status: 'fail',
        details: { version: null, dirty: null, expected_version: latest.version },
      });
      expect(report.checks.http_endpoint!.status).toBe('pass');
    } finally {
      await down.close();
      await db.close();
    }
  });

  it('accepts pending migrations: 503, the applied version below the expected one', async () => {
    const sql = 'ALTER TABLE events ADD COLUMN later text';
    const ahead = await startTestApp({
      database: tested.db,
      migrations: [...migrations, { version: 9000, name: 'later', sql, checksum: checksumOf(sql) }],
    });
    try {
      const result = await call(`${ahead.url}/health`);
      expect(result.status).toBe(503);
      const report = contract(result.body);
      expect(report.checks.migrations).toEqual({
        status: 'fail',
        message: 'schema is behind this build: 1 pending (9000_later); run togather migrate up',
        latency: report.checks.migrations!.latency,
        latency_ms: report.checks.migrations!.latency_ms,
        details: {
          version: latest.version,
          dirty: false,
          expected_version: 9000,
          pending: ['9000_later'],
        },
      });
    } finally {
      await ahead.close();
    }
  });

  it('accepts a dirty migration: dirty true', async () => {
    await tested.db.query(
      `INSERT INTO schema_migrations (version, name, checksum, dirty) VALUES (8000, 'half', 'x', true)`,
    );
    try {
      const report = contract((await call(`${tested.url}/health`)).body);
      expect(report.checks.migrations!.details).toMatchObject({ version: 8000, dirty: true });
    } finally {
      await tested.db.query('DELETE FROM schema_migrations WHERE version = 8000');
    }
  });

  it('accepts the answer while shutting down: 503, required fields kept, shutting_down added', async () => {
    const lifecycle = new Lifecycle();
    const draining = await startTestApp({ database: tested.db, lifecycle });
    try {
      lifecycle.startDraining();
      const result = await call(`${draining.url}/health`);
      expect(result.status).toBe(503);
      const report = contract(result.body);
      expect(report).toMatchObject({
        status: 'unhealthy',
        shutting_down: true,
        version: commitVersion(buildInfo().git_commit),
        checks: {
          database: {
            status: 'warn',
            message: 'not checked: shutting down',
            details: { kind: 'postgres', pool_size: 5 },
          },
          migrations: {
            status: 'warn',
            message: 'not checked: shutting down',
            details: { version: null, dirty: null, expected_version: latest.version },
          },
          http_endpoint: {
            status: 'fail',
            message:
              'shutting down: the listener closes once requests in flight finish (0 besides this one)',
          },
        },
      });
    } finally {
      await draining.close();
    }
  });

  it('refuses answers that break the contract', () => {
    const good = {
      status: 'healthy',
      version: 'abc1234',
      timestamp: '2026-01-01T00:00:00.000Z',
      checks: {
        database: {
          status: 'pass',
          message: 'ok',
          latency: '8ms',
          details: { pool_size: 1, active: 0, idle: 1 },
        },
        migrations: {
          status: 'pass',
          message: 'ok',
          latency: '2s',
          details: { version: 1, dirty: false },
        },
        http_endpoint: { status: 'pass', message: 'ok', latency: '1.5s' },
      },
    };
    expect(validate(good)).toBe(true);
    const broken = (change: (copy: typeof good & Record<string, unknown>) => void) => {
      const copy = structuredClone(good) as typeof good & Record<string, unknown>;
      change(copy);
      return validate(copy);
    };
    expect(broken((r) => (r.version = '0.1.0'))).toBe(false);
    expect(broken((r) => (r.version = 'ABC1234'))).toBe(false);
    expect(broken((r) => (r.status = 'shutting_down'))).toBe(false);
    expect(broken((r) => (r.timestamp = 'yesterday'))).toBe(false);
    expect(broken((r) => delete (r.checks as Record<string, unknown>).http_endpoint)).toBe(false);
    expect(broken((r) => ((r.checks.database as Record<string, unknown>).latency = 8))).toBe(false);
    expect(broken((r) => ((r.checks.database as Record<string, unknown>).latency = '8 ms'))).toBe(
      false,
    );
    expect(
      broken((r) => delete (r.checks.migrations.details as Record<string, unknown>).dirty),
    ).toBe(false);
    expect(broken((r) => delete (r.checks.database as Record<string, unknown>).details)).toBe(
      false,
    );
    expect(broken((r) => ((r.checks.http_endpoint as Record<string, unknown>).status = 'ok'))).toBe(
      false,
    );
  });
});

describe('http_endpoint', () => {
  it('fails when the listener takes no more connections', async () => {
    const crowded = await startTestApp({ database: tested.db });
    try {
      // The /health request holds the one connection allowed; the check's own is refused.
      crowded.app.server.maxConnections = 1;
      const result = await call(`${crowded.url}/health`);
      expect(result.status).toBe(503);
      const report = contract(result.body);
      expect(report.checks.http_endpoint).toMatchObject({
        status: 'fail',
        message: 'the HTTP listener is unreachable: ECONNRESET',
        details: { url: `${crowded.url}/healthz` },
      });
      expect(report.checks.database!.status).toBe('pass');
    } finally {
      await crowded.close();
    }
  });

  it('fails when the listener accepts but does not answer in time', async () => {
    const sockets: Socket[] = [];
    const wedged: Server = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => wedged.listen(0, '127.0.0.1', resolve));
    try {
      const check = httpEndpointCheck({ address: () => wedged.address(), timeoutMs: 200 });
      const port = (wedged.address() as { port: number }).port;
      expect(await check.run()).toEqual({
        status: 'fail',
        message: 'the HTTP listener did not answer GET /healthz within 200 ms',
        details: { url: `http://127.0.0.1:${port}/healthz` },
      });
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => wedged.close(resolve));
    }
  });

  it('fails when not listening at all', async () => {
    const check = httpEndpointCheck({ address: () => null });
    expect(await check.run()).toEqual({
      status: 'fail',
      message: 'the HTTP listener is not listening',
    });
  });
});

describe('the fields the contract fixes', () => {
  it('version is 7-40 lowercase hex: the commit, or git’s null id when the build knew none', () => {
    expect(commitVersion('abc1234')).toBe('abc1234');
    expect(commitVersion('ABC1234DEF')).toBe('abc1234def');
    expect(commitVersion('a'.repeat(40))).toBe('a'.repeat(40));
    expect(commitVersion('unknown')).toBe(UNKNOWN_COMMIT);
    expect(commitVersion('abc12')).toBe(UNKNOWN_COMMIT);
    expect(commitVersion('a'.repeat(41))).toBe(UNKNOWN_COMMIT);
    expect(UNKNOWN_COMMIT).toBe('0000000000000000000000000000000000000000');
  });

  it('latency is whole milliseconds below a second, else seconds', () => {
    expect(formatLatency(0.2)).toBe('0ms');
    expect(formatLatency(8.4)).toBe('8ms');
    expect(formatLatency(999.4)).toBe('999ms');
    expect(formatLatency(999.6)).toBe('1s');
    expect(formatLatency(1500)).toBe('1.5s');
    expect(formatLatency(2000)).toBe('2s');
  });
});

describe('the clients of /health read the package version from app_version', () => {
  it('the proxy health gate', async () => {
    const probe = await probeHealth(`${tested.url}/health`, 2000);
    expect(probe).toMatchObject({ ok: true, status: 'healthy', version: buildInfo().version });
  });

  it('togather healthcheck', async () => {
    expect(await checkOnce(`${tested.url}/health`, 2000)).toEqual({
      code: 0,
      message: `healthy: slot blue, version ${buildInfo().version}`,
    });
  });
});
