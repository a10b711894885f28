import type { FastifyInstance } from 'fastify';
import type { BuildInfo } from '../common/build-info.js';
import type { Slot } from '../proxy/slot-state.js';
import type { Database } from './database.js';
import { errorText } from './error-text.js';
import type { Lifecycle } from './lifecycle.js';
import { migrationLabel, migrationRunning, migrationStatus, type Migration } from './migrate.js';

export type CheckStatus = 'pass' | 'warn' | 'fail';

export interface CheckOutcome {
  status: CheckStatus;
  message: string;
}

export interface CheckResult extends CheckOutcome {
  latency_ms: number;
}

export type HealthCheck = () => Promise<CheckOutcome>;

export type HealthStatus = 'healthy' | 'degraded' | 'unhealthy';

export interface HealthReport {
  status: HealthStatus;
  slot: Slot | null;
  version: string;
  git_commit: string;
  checks: Record<string, CheckResult>;
  timestamp: string;
}

export const SHUTTING_DOWN = { status: 'shutting_down' } as const;

/** Runs every check at once, each bounded by timeoutMs (a late check fails). */
export async function runChecks(
  checks: Record<string, HealthCheck>,
  timeoutMs: number,
): Promise<Record<string, CheckResult>> {
  const entries = await Promise.all(
    Object.entries(checks).map(async ([name, check]) => {
      const started = performance.now();
      const outcome = await withTimeout(check, timeoutMs);
      const latency_ms = Math.round((performance.now() - started) * 10) / 10;
      return [name, { ...outcome, latency_ms }] as const;
    }),
  );
  return Object.fromEntries(entries);
}

async function withTimeout(check: HealthCheck, timeoutMs: number): Promise<CheckOutcome> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<CheckOutcome>((resolve) => {
    timer = setTimeout(
      () => resolve({ status: 'fail', message: `no answer within ${timeoutMs} ms` }),
      timeoutMs,
    );
  });
  const run = check().catch((error: unknown): CheckOutcome => ({
    status: 'fail',
    message: errorText(error),
  }));
  try {
    return await Promise.race([run, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export function overallStatus(results: Record<string, CheckResult>): HealthStatus {
  const statuses = Object.values(results).map((r) => r.status);
  if (statuses.includes('fail')) return 'unhealthy';
  if (statuses.includes('warn')) return 'degraded';
  return 'healthy';
}

/** The database answers a query; warns when slow or when requests queue for connections. */
export function databaseCheck(db: Database, slowMs = 1000): HealthCheck {
  return async () => {
    const started = performance.now();
    try {
      await db.query('SELECT 1');
    } catch (error) {
      return { status: 'fail', message: `${db.kind} unreachable: ${errorText(error)}` };
    }
    const ms = Math.round(performance.now() - started);
    const pool = db.poolStats();
    if (ms > slowMs) return { status: 'warn', message: `${db.kind} answered slowly (${ms} ms)` };
    if (pool.waiting > 0) {
      return {
        status: 'warn',
        message: `${pool.waiting} requests waiting for a connection (pool max ${pool.max})`,
      };
    }
    return { status: 'pass', message: `${db.kind} reachable` };
  };
}

/**
 * The schema matches this build: fails when it is behind (pending
 * migrations) or a migration was interrupted; a newer schema passes, since
 * migrations are additive (server/migrations/RULES.md).
 */
export function migrationsCheck(db: Database, known: readonly Migration[]): HealthCheck {
  return async () => {
    let status;
    try {
      status = await migrationStatus(db, known);
    } catch (error) {
      return { status: 'fail', message: `cannot read schema_migrations: ${errorText(error)}` };
    }
    if (status.dirty.length > 0) {
      const labels = status.dirty.map(migrationLabel).join(', ');
      if (await migrationRunning(db).catch(() => false)) {
        return { status: 'warn', message: `migration in progress: ${labels}` };
      }
      return {
        status: 'fail',
        message: `migration ${labels} is dirty (a migrate run was interrupted); run togather migrate up`,
      };
    }
    if (status.pending.length > 0) {
      const labels = status.pending.map(migrationLabel).join(', ');
      return {
        status: 'fail',
        message: `schema is behind this build: ${status.pending.length} pending (${labels}); run togather migrate up`,
      };
    }
    if (status.modified.length > 0) {
      return {
        status: 'warn',
        message: `applied migration files changed since: ${status.modified.map(migrationLabel).join(', ')}`,
      };
    }
    const latest = status.applied[status.applied.length - 1];
    const at = latest ? migrationLabel(latest) : 'no migrations';
    if (status.newer.length > 0) {
      return {
        status: 'pass',
        message: `schema at ${at}, ${status.newer.length} ahead of this build (additive, compatible)`,
      };
    }
    return { status: 'pass', message: `schema up to date at ${at}` };
  };
}

export interface HealthRoutesDeps {
  checks: Record<string, HealthCheck>;
  lifecycle: Lifecycle;
  build: BuildInfo;
  slot: Slot | null;
  checkTimeoutMs: number;
  now: () => number;
}

/** /health (full report), /healthz (liveness), /readyz (ready for traffic). */
export function registerHealthRoutes(app: FastifyInstance, deps: HealthRoutesDeps): void {
  // Probes from several proxies at once share one round of checks.
  let running: Promise<Record<string, CheckResult>> | undefined;
  const check = () => {
    running ??= runChecks(deps.checks, deps.checkTimeoutMs).finally(() => {
      running = undefined;
    });
    return running;
  };

  app.get('/health', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
    if (deps.lifecycle.draining) return reply.code(503).send(SHUTTING_DOWN);
    const checks = await check();
    const status = overallStatus(checks);
    const report: HealthReport = {
      status,
      slot: deps.slot,
      version: deps.build.version,
      git_commit: deps.build.git_commit,
      checks,
      timestamp: new Date(deps.now()).toISOString(),
    };
    return reply.code(status === 'unhealthy' ? 503 : 200).send(report);
  });

  app.get('/healthz', async (_request, reply) =>
    reply.header('cache-control', 'no-store').send({ status: 'ok' }),
  );

  app.get('/readyz', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
    if (deps.lifecycle.draining) return reply.code(503).send(SHUTTING_DOWN);
    const checks = await check();
    const failing = Object.keys(checks).filter((name) => checks[name]?.status === 'fail');
    if (failing.length > 0) return reply.code(503).send({ status: 'not_ready', failing });
    return reply.send({ status: 'ready' });
  });
}
