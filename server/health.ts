import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { BuildInfo } from '../common/build-info.js';
import type { Slot } from '../common/slot.js';
import type { Database } from './database.js';
import { errorText } from './error-text.js';
import type { Lifecycle } from './lifecycle.js';
import {
  migrationLabel,
  migrationRunning,
  migrationStatus,
  type Migration,
  type MigrationStatus,
} from './migrate.js';
import { embeddableJsonSchema } from './openapi.js';
import healthResponseSchema from './schemas/health-response.schema.json' with { type: 'json' };

export type CheckStatus = 'pass' | 'warn' | 'fail';

export interface CheckOutcome {
  status: CheckStatus;
  message: string;
  details?: Record<string, unknown>;
}

export interface CheckResult {
  status: CheckStatus;
  message: string;
  /** "8ms", "2s": the contract's form. */
  latency: string;
  latency_ms: number;
  details?: Record<string, unknown>;
}

export interface HealthCheck {
  run(): Promise<CheckOutcome>;
  /** What can still be told when run throws or does not answer in time. */
  detailsWhenFailed?(): Record<string, unknown>;
}

export type HealthStatus = 'healthy' | 'degraded' | 'unhealthy';

/** The answer of GET /health: the Togather health-check contract (server/schemas/health-response.schema.json). */
export interface HealthReport {
  status: HealthStatus;
  /** The git commit SHA of the build (7 to 40 lowercase hex). */
  version: string;
  app_version: string;
  git_commit: string;
  slot: Slot | null;
  shutting_down?: true;
  checks: Record<string, CheckResult>;
  timestamp: string;
}

/** The names the contract requires, in the order they are reported. */
export const REQUIRED_CHECKS = ['database', 'migrations', 'http_endpoint'] as const;
export type RequiredCheck = (typeof REQUIRED_CHECKS)[number];

/** /readyz while draining (not part of the health contract). */
export const SHUTTING_DOWN = { status: 'shutting_down' } as const;

/** Git's null object id: the `version` of a build that did not know its commit. */
export const UNKNOWN_COMMIT = '0'.repeat(40);

/** The build's commit as the contract's `version`: 7-40 lowercase hex, else UNKNOWN_COMMIT. */
export function commitVersion(gitCommit: string): string {
  const sha = gitCommit.trim().toLowerCase();
  return /^[0-9a-f]{7,40}$/.test(sha) ? sha : UNKNOWN_COMMIT;
}

/** Whole milliseconds below a second ("8ms"), else seconds to a tenth ("2s", "1.5s"). */
export function formatLatency(ms: number): string {
  if (ms < 999.5) return `${Math.max(0, Math.round(ms))}ms`;
  return `${Math.round(ms / 100) / 10}s`;
}

/** Runs every check at once, each bounded by timeoutMs (a late check fails). */
export async function runChecks(
  checks: Record<string, HealthCheck>,
  timeoutMs: number,
): Promise<Record<string, CheckResult>> {
  const entries = await Promise.all(
    Object.entries(checks).map(async ([name, check]) => {
      const started = performance.now();
      const outcome = await withTimeout(check, timeoutMs);
      const ms = performance.now() - started;
      return [name, result(outcome, ms)] as const;
    }),
  );
  return Object.fromEntries(entries);
}

function result(outcome: CheckOutcome, ms: number): CheckResult {
  return {
    status: outcome.status,
    message: outcome.message,
    latency: formatLatency(ms),
    latency_ms: Math.round(ms * 10) / 10,
    ...(outcome.details ? { details: outcome.details } : {}),
  };
}

async function withTimeout(check: HealthCheck, timeoutMs: number): Promise<CheckOutcome> {
  let timer: NodeJS.Timeout | undefined;
  const failed = (message: string): CheckOutcome => {
    const details = check.detailsWhenFailed?.();
    return { status: 'fail', message, ...(details ? { details } : {}) };
  };
  const timeout = new Promise<CheckOutcome>((resolve) => {
    timer = setTimeout(() => resolve(failed(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  const run = check.run().catch((error: unknown) => failed(errorText(error)));
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

/** Pool figures: what the process knows of its connections, even with the database down. */
function poolDetails(db: Database): Record<string, unknown> {
  const pool = db.poolStats();
  return {
    kind: db.kind,
    pool_size: pool.max,
    open: pool.total,
    active: Math.max(0, pool.total - pool.idle),
    idle: pool.idle,
    waiting: pool.waiting,
  };
}

/** The database answers a query; warns when slow or when requests queue for connections. */
export function databaseCheck(db: Database, slowMs = 1000): HealthCheck {
  return {
    detailsWhenFailed: () => poolDetails(db),
    async run() {
      const started = performance.now();
      try {
        await db.query('SELECT 1');
      } catch (error) {
        return {
          status: 'fail',
          message: `${db.kind} unreachable: ${errorText(error)}`,
          details: poolDetails(db),
        };
      }
      const ms = Math.round(performance.now() - started);
      const details = poolDetails(db);
      const pool = db.poolStats();
      if (ms > slowMs) {
        return { status: 'warn', message: `${db.kind} answered slowly (${ms} ms)`, details };
      }
      if (pool.waiting > 0) {
        return {
          status: 'warn',
          message: `${pool.waiting} requests waiting for a connection (pool max ${pool.max})`,
          details,
        };
      }
      return { status: 'pass', message: `${db.kind} reachable`, details };
    },
  };
}

function highestVersion(items: ReadonlyArray<{ version: number }>): number {
  return items.reduce((max, item) => Math.max(max, item.version), 0);
}

/** The contract's migrations details: applied version, dirty flag, and what this build expects. */
function migrationDetails(
  known: readonly Migration[],
  status: MigrationStatus | undefined,
): Record<string, unknown> {
  const expected = highestVersion(known);
  if (!status) return { version: null, dirty: null, expected_version: expected };
  return {
    version: highestVersion(status.applied),
    dirty: status.dirty.length > 0,
    expected_version: expected,
    pending: status.pending.map(migrationLabel),
  };
}

/**
 * The schema matches this build: fails when it is behind (pending
 * migrations) or a migration was interrupted; a newer schema passes, since
 * migrations are additive (server/migrations/RULES.md).
 */
export function migrationsCheck(db: Database, known: readonly Migration[]): HealthCheck {
  return {
    detailsWhenFailed: () => migrationDetails(known, undefined),
    async run() {
      let status: MigrationStatus;
      try {
        status = await migrationStatus(db, known);
      } catch (error) {
        return {
          status: 'fail',
          message: `cannot read schema_migrations: ${errorText(error)}`,
          details: migrationDetails(known, undefined),
        };
      }
      const details = migrationDetails(known, status);
      if (status.dirty.length > 0) {
        const labels = status.dirty.map(migrationLabel).join(', ');
        if (await migrationRunning(db).catch(() => false)) {
          return { status: 'warn', message: `migration in progress: ${labels}`, details };
        }
        return {
          status: 'fail',
          message: `migration ${labels} is dirty (a migrate run was interrupted); run togather migrate up`,
          details,
        };
      }
      if (status.pending.length > 0) {
        const labels = status.pending.map(migrationLabel).join(', ');
        return {
          status: 'fail',
          message: `schema is behind this build: ${status.pending.length} pending (${labels}); run togather migrate up`,
          details,
        };
      }
      if (status.modified.length > 0) {
        return {
          status: 'warn',
          message: `applied migration files changed since: ${status.modified.map(migrationLabel).join(', ')}`,
          details,
        };
      }
      const latest = status.applied[status.applied.length - 1];
      const at = latest ? migrationLabel(latest) : 'no migrations';
      if (status.newer.length > 0) {
        return {
          status: 'pass',
          message: `schema at ${at}, ${status.newer.length} ahead of this build (additive, compatible)`,
          details,
        };
      }
      return { status: 'pass', message: `schema up to date at ${at}`, details };
    },
  };
}

export interface HealthRoutesDeps {
  checks: Record<RequiredCheck, HealthCheck> & Record<string, HealthCheck>;
  lifecycle: Lifecycle;
  build: BuildInfo;
  slot: Slot | null;
  checkTimeoutMs: number;
  now: () => number;
}

/**
 * While draining nothing is checked: the answer must come at once, and the
 * listener is about to close, which http_endpoint says.
 */
function drainingChecks(
  checks: Record<string, HealthCheck>,
  lifecycle: Lifecycle,
): Record<string, CheckResult> {
  const results: Record<string, CheckResult> = {};
  for (const [name, check] of Object.entries(checks)) {
    const details = check.detailsWhenFailed?.();
    results[name] = result(
      { status: 'warn', message: 'not checked: shutting down', ...(details ? { details } : {}) },
      0,
    );
  }
  results.http_endpoint = result(
    {
      status: 'fail',
      // This request is in flight too.
      message: `shutting down: the listener closes once requests in flight finish (${Math.max(0, lifecycle.inflight - 1)} besides this one)`,
    },
    0,
  );
  return results;
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
  const identity = {
    version: commitVersion(deps.build.git_commit),
    app_version: deps.build.version,
    git_commit: deps.build.git_commit,
    slot: deps.slot,
  };

  const health = embeddableJsonSchema(healthResponseSchema);
  const statusBody = (name: string) => z.object({ status: z.literal(name) });
  app.get(
    '/health',
    {
      schema: {
        tags: ['Operations'],
        summary: 'Health by the Togather health-check contract',
        response: {
          200: { ...health, description: 'healthy, or degraded (some check warns)' },
          503: { ...health, description: 'unhealthy (a check fails), or shutting down' },
        },
      },
    },
    async (_request, reply) => {
      reply.header('cache-control', 'no-store');
      if (deps.lifecycle.draining) {
        const report: HealthReport = {
          status: 'unhealthy',
          ...identity,
          shutting_down: true,
          checks: drainingChecks(deps.checks, deps.lifecycle),
          timestamp: new Date(deps.now()).toISOString(),
        };
        return reply.code(503).send(report);
      }
      const checks = await check();
      const status = overallStatus(checks);
      const report: HealthReport = {
        status,
        ...identity,
        checks,
        timestamp: new Date(deps.now()).toISOString(),
      };
      return reply.code(status === 'unhealthy' ? 503 : 200).send(report);
    },
  );

  app.get(
    '/healthz',
    {
      schema: {
        tags: ['Operations'],
        summary: 'Liveness: the process answers',
        response: { 200: statusBody('ok') },
      },
    },
    async (_request, reply) => reply.header('cache-control', 'no-store').send({ status: 'ok' }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['Operations'],
        summary: 'Readiness: no check fails',
        response: {
          200: statusBody('ready'),
          503: z.union([
            z.object({ status: z.literal('not_ready'), failing: z.array(z.string()) }),
            statusBody('shutting_down'),
          ]),
        },
      },
    },
    async (_request, reply) => {
      reply.header('cache-control', 'no-store');
      if (deps.lifecycle.draining) return reply.code(503).send(SHUTTING_DOWN);
      const checks = await check();
      const failing = Object.keys(checks).filter((name) => checks[name]?.status === 'fail');
      if (failing.length > 0) return reply.code(503).send({ status: 'not_ready', failing });
      return reply.send({ status: 'ready' });
    },
  );
}
