import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { userInfo } from 'node:os';
import { Redis } from 'ioredis';
import { CommandFailed, UsageError } from '../../cli/errors.js';
import { createAdminClient, type AdminClient } from '../../proxy/admin/client.js';
import { redisKeys } from '../../proxy/state/redis-keys.js';
import { isSlot, otherSlot, type Slot } from '../../common/slot.js';
import { DEFAULT_RETRY_POLICY } from './admin-retry.js';
import { runDeploy } from './deploy.js';
import {
  DEFAULT_ENV_FILE,
  DEPLOY_ONLY_VARIABLES,
  FlagReader,
  locations,
  lookup,
  readEnvValuesIfPresent,
  statePaths,
  type Locations,
  type RunnerKind,
} from './deploy-settings.js';
import {
  jsonReporter,
  plainReporter,
  summaryLine,
  ttyReporter,
  formatDuration,
} from './deploy-output.js';
import type {
  DeploymentRecord,
  DeploymentStore,
  StepRecord,
} from '../records/deployment-record.js';
import {
  createFileDeploymentStore,
  createRedisDeploymentStore,
} from '../records/deployment-store.js';
import { readEnvFile } from '../env-file.js';
import { createFileLock } from '../locks/lock-file.js';
import { createRedisLock } from '../locks/lock-redis.js';
import type { DeployLock } from '../locks/lock.js';
import { fetchMetrics } from './proxy-metrics.js';
import { STEPS, type StepName } from './plan.js';
import { createComposeRunner } from '../runners/runner-compose.js';
import { cliOf, createLocalRunner } from '../runners/runner-local.js';
import type { SlotRunner } from '../runners/runner.js';
import { SlotProcessFile } from '../runners/slot-processes.js';

/** The flags of `togather deploy`, as commander hands them over. */
export interface DeployFlags {
  runner: RunnerKind;
  env?: string;
  build?: string;
  image?: string;
  version?: string;
  gitCommit?: string;
  skipSnapshot?: boolean;
  skipMigrations?: boolean;
  stopOld?: boolean;
  healthRetries: string;
  healthInterval: string;
  verifySeconds: string;
  maxErrorRatio: string;
  lockTtl: string;
  switchRetryTime: string;
  json?: boolean;
  dryRun?: boolean;
}

/** The lengths the app and the proxy insist on at start, checked before anything moves. */
const SECRETS_MIN_LENGTH = {
  JWT_SECRET: 64,
  ADMIN_API_KEY: 32,
  ADMIN_PASSWORD: 12,
  PROXY_ADMIN_API_KEY: 32,
} as const;
const APP_SECRETS = ['JWT_SECRET', 'ADMIN_API_KEY', 'ADMIN_PASSWORD', 'PROXY_ADMIN_API_KEY'];
const REQUIRED: Record<RunnerKind, string[]> = {
  compose: ['POSTGRES_PASSWORD', ...APP_SECRETS],
  // Two slot processes share one database: the embedded PGlite of `serve` cannot be it.
  local: ['DATABASE_URL', ...APP_SECRETS],
};

function deployActor(): string {
  try {
    return `deploy:${userInfo().username}`;
  } catch {
    return 'deploy';
  }
}

/** Build metadata of a build directory (dist/build-info.json). */
function buildInfoOf(build: string): { version?: string; git_commit?: string } {
  try {
    return JSON.parse(readFileSync(join(build, 'build-info.json'), 'utf8')) as {
      version?: string;
      git_commit?: string;
    };
  } catch {
    return {};
  }
}

/** Redis for the lock and history when REDIS_URL is set; connection problems exit 1. */
async function connectRedis(url: string): Promise<Redis> {
  const redis = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 2,
    connectTimeout: 5_000,
    retryStrategy: (times) => (times > 3 ? null : 200 * times),
  });
  redis.on('error', () => {}); // surfaced by the commands that fail
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    throw new CommandFailed(`cannot reach Redis for the deploy lock (${(error as Error).message})`);
  }
  return redis;
}

interface Backends {
  lock: DeployLock;
  store: DeploymentStore;
  close(): Promise<void>;
}

async function backends(where: Locations, lockTtlMs: number): Promise<Backends> {
  const paths = statePaths(where.stateDir);
  if (where.redisUrl) {
    const redis = await connectRedis(where.redisUrl);
    return {
      lock: createRedisLock({
        redis,
        key: redisKeys(where.redisKeyPrefix).deployLock,
        ttlMs: lockTtlMs,
      }),
      store: createRedisDeploymentStore(redis, where.redisKeyPrefix),
      async close() {
        await redis.quit().catch(() => redis.disconnect());
      },
    };
  }
  return {
    lock: createFileLock({ path: paths.lock, ttlMs: lockTtlMs }),
    store: createFileDeploymentStore(paths.history),
    async close() {},
  };
}

/** How long switch and rollback calls are retried while the proxy answers 429 or 503. */
export const DEFAULT_SWITCH_RETRY_TIME = '30s';

/** What the flags say, once every one of them is known good. */
interface ReadFlags {
  healthRetries: number;
  healthIntervalMs: number;
  verifySeconds: number;
  maxErrorRatio: number;
  lockTtlMs: number;
  switchRetryMs: number;
  version: string;
  versionSource: string;
  gitCommit: string | undefined;
}

/** Reads every flag, reporting all the bad ones at once (exit 2). */
function readFlags(flags: DeployFlags): ReadFlags {
  const reader = new FlagReader();
  const read = {
    healthRetries: reader.integer('--health-retries', flags.healthRetries, 1, 10_000),
    healthIntervalMs: reader.duration('--health-interval', flags.healthInterval),
    verifySeconds: reader.seconds('--verify-seconds', flags.verifySeconds),
    maxErrorRatio: reader.ratio('--max-error-ratio', flags.maxErrorRatio),
    lockTtlMs: reader.duration('--lock-ttl', flags.lockTtl, 1_000),
    switchRetryMs: reader.duration('--switch-retry-time', flags.switchRetryTime),
  };

  let version = flags.version;
  let versionSource = '--version';
  let gitCommit = flags.gitCommit;
  if (flags.runner === 'local') {
    if (flags.image)
      reader.problem('--image is for --runner compose; the local runner takes --build DIR');
    const build = resolve(flags.build ?? 'dist');
    if (!existsSync(cliOf(build))) {
      reader.problem(
        `--build ${flags.build ?? 'dist'}: ${cliOf(build)} not found (give a built dist/ tree)`,
      );
    } else {
      const info = buildInfoOf(build);
      if (version === undefined && info.version) {
        version = info.version;
        versionSource = join(build, 'build-info.json');
      }
      gitCommit ??= info.git_commit;
      if (!version)
        reader.problem(`--version is required: ${build}/build-info.json has no version`);
    }
  } else {
    if (flags.build)
      reader.problem('--build is for --runner local; the compose runner takes --image');
    if (!flags.image) {
      reader.problem('--image is required with --runner compose (e.g. togather:1.4.0)');
    } else {
      const tag = /:([^/:@]+)$/.exec(flags.image)?.[1];
      if (version === undefined && tag && tag !== 'latest') {
        version = tag;
        versionSource = `the image tag of ${flags.image}`;
      }
      if (!version)
        reader.problem(`--version is required: the tag of ${flags.image} does not name one`);
    }
  }
  reader.check();
  return { ...read, version: version!, versionSource, gitCommit };
}

/** `togather deploy`: checks everything it can before touching anything, then runs the rollout. */
export async function deployCommand(flags: DeployFlags): Promise<void> {
  const runnerKind = flags.runner;
  const {
    healthRetries,
    healthIntervalMs,
    verifySeconds,
    maxErrorRatio,
    lockTtlMs,
    switchRetryMs,
    version,
    versionSource,
    gitCommit,
  } = readFlags(flags);

  // 1. Validate the environment file (exit 2 on any problem).
  const validateStart = Date.now();
  const envFilePath = flags.env ?? DEFAULT_ENV_FILE[runnerKind];
  const envFile = readEnvFile(envFilePath, {
    required: REQUIRED[runnerKind],
    minLength: SECRETS_MIN_LENGTH,
    distinct: [['PROXY_ADMIN_API_KEY', 'ADMIN_API_KEY']],
  });
  const get = lookup(envFile.values);
  const where = locations(runnerKind, get);
  const adminKey = get('PROXY_ADMIN_API_KEY')!;
  const skipSnapshot = flags.skipSnapshot
    ? '--skip-snapshot'
    : isOn(get('DEPLOY_SKIP_SNAPSHOT'))
      ? `DEPLOY_SKIP_SNAPSHOT=${get('DEPLOY_SKIP_SNAPSHOT')} in ${envFilePath}`
      : undefined;
  const validation: StepRecord = {
    name: 'validate',
    status: 'ok',
    started_at: new Date(validateStart).toISOString(),
    duration_ms: Date.now() - validateStart,
    detail: `${envFilePath}: ${Object.keys(envFile.values).length} variables, no ${'CHANGE_ME'} left`,
  };

  const paths = statePaths(where.stateDir);
  const runner = makeRunner(runnerKind, flags, envFile, where, paths);
  const admin = createAdminClient({ url: where.adminUrl, apiKey: adminKey, actor: deployActor() });

  const out = (text: string) => process.stdout.write(text);
  const err = (text: string) => process.stderr.write(text);
  if (flags.dryRun) {
    await printPlan({
      flags,
      admin,
      runner,
      where,
      version,
      envFilePath,
      skipSnapshot,
      warnings: envFile.warnings,
      out,
    });
    return;
  }

  const reporter = flags.json
    ? jsonReporter(out, err)
    : process.stdout.isTTY
      ? ttyReporter(out)
      : plainReporter(out, err);
  reporter.stepFinished(validation);
  for (const warning of envFile.warnings) reporter.warn(warning);

  const { lock, store, close } = await backends(where, lockTtlMs);
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    reporter.warn(`${signal}: stopping the deploy (rolling back if traffic moved)`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let record: DeploymentRecord;
  try {
    record = await runDeploy(
      {
        version,
        versionSource,
        gitCommit: gitCommit ?? 'unknown',
        actor: deployActor(),
        skipSnapshot,
        skipMigrations: flags.skipMigrations === true,
        stopOld: flags.stopOld === true,
        healthRetries,
        healthIntervalMs,
        verifyMs: verifySeconds * 1000,
        verifyIntervalMs: 500,
        maxErrorRatio,
        proxyUrl: where.proxyUrl,
        adminRetry: { ...DEFAULT_RETRY_POLICY, totalMs: switchRetryMs },
        validation,
      },
      {
        admin,
        lock,
        store,
        runner,
        reporter,
        metrics: () => fetchMetrics(where.adminUrl),
        signal: controller.signal,
      },
    );
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await close();
  }
  if (record.result !== 'deployed') {
    throw new CommandFailed(summaryLine(record));
  }
}

function isOn(value: string | undefined): boolean {
  return value !== undefined && ['1', 'true', 'on', 'yes'].includes(value.toLowerCase());
}

function makeRunner(
  kind: RunnerKind,
  flags: DeployFlags,
  envFile: { path: string; values: Record<string, string> },
  where: Locations,
  paths: ReturnType<typeof statePaths>,
): SlotRunner {
  if (kind === 'compose') {
    const dir = dirname(envFile.path);
    return createComposeRunner({
      image: flags.image!,
      files: [join(dir, 'docker-compose.yml'), join(dir, 'docker-compose.blue-green.yml')],
      envFile: envFile.path,
      ports: where.ports,
      docker: process.env.DOCKER || 'docker',
    });
  }
  const appEnv: Record<string, string> = {};
  const deployOnly: readonly string[] = DEPLOY_ONLY_VARIABLES;
  for (const [key, value] of Object.entries(envFile.values)) {
    if (!deployOnly.includes(key)) appEnv[key] = value;
  }
  const grace = Number(envFile.values.GRACEFUL_SHUTDOWN_TIMEOUT_SECONDS ?? '30');
  return createLocalRunner({
    build: flags.build ?? 'dist',
    env: appEnv,
    ports: where.ports,
    metricsPorts: where.metricsPorts,
    slotProcesses: new SlotProcessFile(paths.slots),
    logDir: paths.logs,
    stopGraceMs: (Number.isFinite(grace) ? grace : 30) * 1000 + 5_000,
  });
}

/** The active slot as the proxy tells it, for the plan; a reason when it cannot. */
async function readActive(
  admin: AdminClient,
): Promise<{ active: Slot; epoch: number | undefined } | { problem: string }> {
  try {
    const status = await admin.status();
    if (!isSlot(status.active)) return { problem: 'its status names no active slot' };
    return {
      active: status.active,
      epoch: typeof status.epoch === 'number' ? status.epoch : undefined,
    };
  } catch (error) {
    return { problem: (error as Error).message };
  }
}

async function printPlan(input: {
  flags: DeployFlags;
  admin: AdminClient;
  runner: SlotRunner;
  where: Locations;
  version: string;
  envFilePath: string;
  skipSnapshot: string | undefined;
  warnings: string[];
  out: (text: string) => void;
}): Promise<void> {
  const { flags, runner, where } = input;
  // Read-only: the plan names the slot the deploy would really start.
  const now = await readActive(input.admin);
  const warnings = [...input.warnings];
  let active: string;
  let start: string;
  let target: Slot | null = null;
  if ('active' in now) {
    target = otherSlot(now.active);
    const epoch = now.epoch !== undefined ? ` (epoch ${now.epoch})` : '';
    active = `GET ${where.adminUrl}/admin/status: ${now.active} is active${epoch}; the target is ${target}`;
    start = runner.describeStart(target);
  } else {
    warnings.push(
      `the proxy's admin API at ${where.adminUrl} did not tell the active slot (${now.problem}): the deploy would stop at the active step`,
    );
    active = `GET ${where.adminUrl}/admin/status: unknown now; the idle slot is the target`;
    start = `on the idle slot: blue: ${runner.describeStart('blue')}; green: ${runner.describeStart('green')}`;
  }
  const details: Partial<Record<StepName, string>> = {
    validate: `${input.envFilePath}: ok`,
    lock: where.redisUrl
      ? `redis ${redisKeys(where.redisKeyPrefix).deployLock}`
      : statePaths(where.stateDir).lock,
    active,
    snapshot: input.skipSnapshot
      ? `skipped (${input.skipSnapshot})`
      : 'togather snapshot create --reason pre-deploy',
    migrate: flags.skipMigrations ? 'skipped' : 'togather migrate up',
    start,
    health: `GET /health up to ${flags.healthRetries} times every ${flags.healthInterval}; /version must be ${input.version}`,
    switch: `POST ${where.adminUrl}/admin/switch${target ? `?slot=${target}` : ''} (health-gated, expect_epoch; 429 and 503 retried for ${flags.switchRetryTime})`,
    verify: `${flags.verifySeconds} s through ${where.proxyUrl}: slot header, /health, /version, 5xx ratio <= ${flags.maxErrorRatio}; roll back on failure`,
    'stop-old': flags.stopOld ? 'stop the old slot' : 'keep the old slot for rollback',
  };
  const plan = STEPS.filter((s) => s.name !== 'rollback' && s.name !== 'restore').map((s) => ({
    step: s.name,
    detail: details[s.name] ?? s.label,
  }));
  if (flags.json) {
    input.out(
      JSON.stringify({
        dry_run: true,
        version: input.version,
        runner: runner.kind,
        artifact: runner.artifact,
        active: 'active' in now ? now.active : null,
        target,
        plan,
        warnings,
      }) + '\n',
    );
    return;
  }
  input.out(
    `dry run: deploy ${input.version} (${runner.artifact}) with the ${runner.kind} runner\n`,
  );
  for (const warning of warnings) input.out(`warning: ${warning}\n`);
  plan.forEach((p, i) =>
    input.out(`${String(i + 1).padStart(2)}. ${p.step.padEnd(9)} ${p.detail}\n`),
  );
}

/** `togather deploy status` and `togather deploy history`: read-only views. */
export async function readCommand(
  which: 'status' | 'history',
  flags: { env?: string; json?: boolean; limit?: string },
): Promise<void> {
  const envFilePath = flags.env ?? pickEnvFile();
  if (flags.env && !existsSync(flags.env)) {
    throw new UsageError(`--env ${flags.env}: not found`);
  }
  const get = lookup(envFilePath ? readEnvValuesIfPresent(envFilePath) : {});
  const where = locations('compose', get);
  const reader = new FlagReader();
  const limit = which === 'history' ? reader.integer('--limit', flags.limit ?? '20', 1, 200) : 1;
  reader.check();
  const { lock, store, close } = await backends(where, 30_000);
  try {
    const records = await store.list(limit);
    if (which === 'history') {
      if (flags.json) {
        process.stdout.write(JSON.stringify({ deployments: records }) + '\n');
        return;
      }
      if (records.length === 0) {
        process.stdout.write(`no deployments recorded in ${store.location}\n`);
        return;
      }
      for (const r of records) {
        const took = r.duration_ms === null ? '-' : formatDuration(r.duration_ms);
        const why = r.rollback_reason ?? r.reason ?? '';
        process.stdout.write(
          `${r.started_at}  ${r.id}  ${r.version.padEnd(12)} ${(r.from_slot ?? '?') + ' -> ' + (r.to_slot ?? '?')}  ${r.result.padEnd(11)} ${took.padStart(8)}${why ? `  ${why}` : ''}\n`,
        );
      }
      return;
    }
    const holder = await lock.holder();
    const latest = records[0];
    if (flags.json) {
      process.stdout.write(
        JSON.stringify({
          latest: latest ?? null,
          lock: holder
            ? { ...holder.owner, token: undefined, expires_in_ms: holder.expiresInMs }
            : null,
        }) + '\n',
      );
      return;
    }
    if (!latest) process.stdout.write(`no deployments recorded in ${store.location}\n`);
    else {
      process.stdout.write(
        `${summaryLine(latest)}\n  id ${latest.id}, started ${latest.started_at} by ${latest.actor}, ${latest.runner} runner, ${latest.artifact}\n`,
      );
      for (const s of latest.steps) {
        process.stdout.write(
          `  ${s.name.padEnd(9)} ${s.status.padEnd(7)} ${formatDuration(s.duration_ms).padStart(8)}  ${s.detail}\n`,
        );
      }
    }
    process.stdout.write(
      holder
        ? `deploy lock: held by ${holder.owner.holder} pid ${holder.owner.pid} since ${holder.owner.since} (${holder.owner.purpose})\n`
        : 'deploy lock: free\n',
    );
  } finally {
    await close();
  }
}

/** status/history without --env: the dev stack's file, else the compose one, if present. */
function pickEnvFile(): string | undefined {
  return [DEFAULT_ENV_FILE.local, DEFAULT_ENV_FILE.compose].find((f) => existsSync(f));
}
