import { describe, expect, it } from 'vitest';
import { buildInfo } from '../../common/build-info.js';
import { createLogger } from '../../common/logger.js';
import { openPostgres } from '../../server/database.js';
import { commitVersion } from '../../server/health.js';
import {
  checksumOf,
  loadMigrations,
  migrationLabel,
  type Migration,
} from '../../server/migrate.js';
import { closedPort } from '../../harness/ports.js';
import { call, startTestApp, appBefore } from '../support/server.js';

interface Check {
  status: string;
  message: string;
  latency: string;
  latency_ms: number;
  details?: Record<string, unknown>;
}
interface Report {
  status: string;
  version: string;
  app_version: string;
  git_commit: string;
  slot: string | null;
  checks: Record<string, Check>;
  timestamp: string;
}

/** The figures a check measured, as it reported them. */
const timing = (check: Check | undefined) => ({
  latency: check!.latency,
  latency_ms: check!.latency_ms,
});

const migrations = await loadMigrations();
const LATEST_VERSION = migrations[migrations.length - 1]!.version;
const LATEST = migrationLabel(migrations[migrations.length - 1]!);
const tested = appBefore();

describe('/health', () => {
  it('is 200 healthy with the database, migrations and http_endpoint checks passing', async () => {
    const result = await call(`${tested.url}/health`);
    expect(result.status).toBe(200);
    expect(result.headers.get('cache-control')).toBe('no-store');
    const report = result.body as Report;
    const { checks } = report;
    expect(report).toEqual({
      status: 'healthy',
      version: commitVersion(buildInfo().git_commit),
      app_version: buildInfo().version,
      git_commit: buildInfo().git_commit,
      slot: 'blue',
      checks: {
        database: {
          status: 'pass',
          message: 'postgres reachable',
          ...timing(checks.database),
          details: {
            kind: 'postgres',
            pool_size: 5,
            open: checks.database!.details!.open,
            active: checks.database!.details!.active,
            idle: checks.database!.details!.idle,
            waiting: 0,
          },
        },
        migrations: {
          status: 'pass',
          message: `schema up to date at ${LATEST}`,
          ...timing(checks.migrations),
          details: {
            version: LATEST_VERSION,
            dirty: false,
            expected_version: LATEST_VERSION,
            pending: [],
          },
        },
        http_endpoint: {
          status: 'pass',
          message: 'GET /healthz answered 200',
          ...timing(checks.http_endpoint),
          details: { url: `${tested.url}/healthz` },
        },
      },
      timestamp: report.timestamp,
    });
    expect(checks.database!.latency_ms).toBeGreaterThanOrEqual(0);
    expect(checks.database!.latency).toMatch(/^\d+ms$/);
    expect(Math.abs(Date.parse(report.timestamp) - Date.now())).toBeLessThan(60_000);
  });

  it('is 503 unhealthy with database: fail when the database is unreachable', async () => {
    const port = await closedPort();
    const db = openPostgres(`postgres://togather:secret-pw@127.0.0.1:${port}/none`, 2, {
      logger: createLogger({ level: 'silent' }),
      connectTimeoutMs: 1000,
    });
    const down = await startTestApp({ database: db });
    try {
      const result = await call(`${down.url}/health`);
      expect(result.status).toBe(503);
      const report = result.body as Report;
      expect(report.status).toBe('unhealthy');
      expect(report.checks.database!.status).toBe('fail');
      expect(report.checks.database!.message).toBe(
        `postgres unreachable: connect ECONNREFUSED 127.0.0.1:${port}`,
      );
      expect(report.checks.migrations!.status).toBe('fail');
      expect(result.text).not.toContain('secret-pw');

      const ready = await call(`${down.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(ready.body).toEqual({ status: 'not_ready', failing: ['database', 'migrations'] });
      const live = await call(`${down.url}/healthz`);
      expect(live.status).toBe(200);
      expect(live.body).toEqual({ status: 'ok' });

      const list = await call(`${down.url}/api/v1/events`);
      expect(list.status).toBe(503);
      expect(list.headers.get('retry-after')).toBe('5');
      expect(list.body).toEqual({
        type: 'about:blank',
        title: 'Service Unavailable',
        status: 503,
        detail: 'database unavailable; try again shortly',
        instance: '/api/v1/events',
        request_id: list.headers.get('x-request-id'),
      });
    } finally {
      await down.close();
      await db.close();
    }
  });

  it('fails the migrations check when the schema is behind this build', async () => {
    const extra: Migration = {
      version: 9999,
      name: 'add_future_column',
      sql: 'ALTER TABLE events ADD COLUMN future text',
      checksum: checksumOf('ALTER TABLE events ADD COLUMN future text'),
    };
    const ahead = await startTestApp({
      database: tested.db,
      migrations: [...(await loadMigrations()), extra],
    });
    try {
      const result = await call(`${ahead.url}/health`);
      expect(result.status).toBe(503);
      const report = result.body as Report;
      expect(report.status).toBe('unhealthy');
      expect(report.checks.database!.status).toBe('pass');
      expect(report.checks.migrations!).toMatchObject({
        status: 'fail',
        message:
          'schema is behind this build: 1 pending (9999_add_future_column); run togather migrate up',
      });
    } finally {
      await ahead.close();
    }
  });

  it('passes when the schema is ahead of this build (an older build during a cutover)', async () => {
    const older = await startTestApp({ database: tested.db, migrations: [] });
    try {
      const result = await call(`${older.url}/health`);
      expect(result.status).toBe(200);
      expect((result.body as Report).checks.migrations).toMatchObject({
        status: 'pass',
        message: `schema at ${LATEST}, ${migrations.length} ahead of this build (additive, compatible)`,
        details: {
          version: LATEST_VERSION,
          dirty: false,
          expected_version: 0,
          pending: [],
        },
      });
    } finally {
      await older.close();
    }
  });

  it('fails on a dirty migration and warns (degraded, 200) on an edited one', async () => {
    await tested.db.query(
      `INSERT INTO schema_migrations (version, name, checksum, dirty) VALUES (5000, 'interrupted', 'x', true)`,
    );
    try {
      const dirty = await call(`${tested.url}/health`);
      expect(dirty.status).toBe(503);
      expect((dirty.body as Report).checks.migrations).toMatchObject({
        status: 'fail',
        message:
          'migration 5000_interrupted is dirty (a migrate run was interrupted); run togather migrate up',
      });
    } finally {
      await tested.db.query('DELETE FROM schema_migrations WHERE version = 5000');
    }
    const [first] = await loadMigrations();
    const edited = await startTestApp({
      database: tested.db,
      migrations: [{ ...first!, checksum: 'edited' }],
    });
    try {
      const result = await call(`${edited.url}/health`);
      expect(result.status).toBe(200);
      expect(result.body).toMatchObject({
        status: 'degraded',
        checks: {
          migrations: {
            status: 'warn',
            message: 'applied migration files changed since: 0001_create_events',
            details: { version: LATEST_VERSION, dirty: false },
          },
        },
      });
    } finally {
      await edited.close();
    }
  });

  it('fails a check that does not answer within the per-check timeout', async () => {
    const slow = await startTestApp({
      database: {
        ...tested.db,
        query: async () => {
          await new Promise((r) => setTimeout(r, 1500));
          return { rows: [], rowCount: 0 };
        },
      },
      healthCheckTimeoutMs: 200,
    });
    try {
      const result = await call(`${slow.url}/health`);
      expect(result.status).toBe(503);
      expect((result.body as Report).checks.database).toMatchObject({
        status: 'fail',
        message: 'no answer within 200 ms',
      });
    } finally {
      await slow.close();
    }
  });
});

describe('/readyz and /healthz', () => {
  it('answer ready and ok', async () => {
    const ready = await call(`${tested.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: 'ready' });
    const live = await call(`${tested.url}/healthz`);
    expect(live.body).toEqual({ status: 'ok' });
  });
});

describe('/version', () => {
  it('answers GET with the build, HEAD without a body, OPTIONS with Allow', async () => {
    const get = await call(`${tested.url}/version`);
    expect(get.status).toBe(200);
    const build = buildInfo();
    expect(get.body).toEqual({
      version: build.version,
      git_commit: build.git_commit,
      build_date: build.build_date,
      node_version: process.version,
    });
    const head = await call(`${tested.url}/version`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.text).toBe('');
    expect(head.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const options = await call(`${tested.url}/version`, { method: 'OPTIONS' });
    expect(options.status).toBe(204);
    expect(options.headers.get('allow')).toBe('GET, HEAD, OPTIONS');
  });

  it('answers 405 with Allow to every other method', async () => {
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
      const result = await call(`${tested.url}/version`, { method });
      expect(result.status).toBe(405);
      expect(result.headers.get('allow')).toBe('GET, HEAD, OPTIONS');
      expect(result.body).toEqual({
        type: 'about:blank',
        title: 'Method Not Allowed',
        status: 405,
        detail: `${method} is not allowed here; allowed: GET, HEAD, OPTIONS`,
        instance: '/version',
        request_id: result.headers.get('x-request-id'),
      });
    }
  });
});
