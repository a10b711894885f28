import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CommandFailed, UsageError } from '../../cli/errors.js';
import { buildInfo } from '../../common/build-info.js';
import { generateSecret } from '../../common/secrets.js';
import { DataDirBusyError, lockDataDir } from '../../server/data-dir-lock.js';
import type { Slot } from '../../common/slot.js';
import { isHealthy, probe, sleep } from '../rollout/app-probe.js';
import { withProxyNodeFlags } from '../../proxy/heap-tuning.js';
import { runToEnd } from '../runners/runner.js';
import { DEV_POOL_MAX, startDevDatabase, type DevDatabase } from './dev-database.js';
import { statePaths } from '../rollout/deploy-settings.js';
import {
  isTogatherProcess,
  portInUse,
  SlotProcessFile,
  stopProcess,
} from '../runners/slot-processes.js';

export interface DevFlags {
  proxyPort: string;
  adminPort: string;
  bluePort: string;
  greenPort: string;
  dbPort: string;
  stateDir: string;
}

/** This very CLI, to start `serve`, `proxy` and `migrate` as child processes. */
const CLI = fileURLToPath(new URL('../../cli/togather.js', import.meta.url));
const BUILD_DIR = fileURLToPath(new URL('../..', import.meta.url));
/** The checkout (or package) this CLI was built in: where `npx togather` runs it. */
const PACKAGE_DIR = fileURLToPath(new URL('../../..', import.meta.url));

interface Child {
  name: string;
  process: ChildProcess;
  log: string;
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function portFlag(flag: string, text: string, allowZero = false): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value > 65_535 || (value === 0 && !allowZero)) {
    throw new UsageError(`${flag}: "${text}" is not a port`);
  }
  return value;
}

/**
 * `togather dev`: the whole stack on one machine without Docker or settings.
 * PGlite over the PostgreSQL protocol (or DATABASE_URL), migrations, blue and
 * green `serve` processes, the proxy with its file store (or REDIS_URL) and
 * its admin API on loopback. Ctrl-C stops everything, including slot
 * processes a `togather deploy --runner local` started meanwhile.
 */
export async function devCommand(flags: DevFlags): Promise<void> {
  const ports = {
    proxy: portFlag('--proxy-port', flags.proxyPort),
    admin: portFlag('--admin-port', flags.adminPort),
    blue: portFlag('--blue-port', flags.bluePort),
    green: portFlag('--green-port', flags.greenPort),
    db: portFlag('--db-port', flags.dbPort, true),
  };
  const listening = [ports.proxy, ports.admin, ports.blue, ports.green];
  if (new Set(listening).size !== listening.length)
    throw new UsageError('the four ports must differ');
  for (const port of listening) {
    if (await portInUse(port))
      throw new CommandFailed(`port ${port} is already in use on 127.0.0.1`);
  }
  // Each slot's /metrics listener (METRICS_PORT) needs a port of its own on
  // this one machine: two free ones, picked now and printed below.
  const blueMetrics = await freeLoopbackPort(listening);
  const metricsPorts: Record<Slot, number> = {
    blue: blueMetrics,
    green: await freeLoopbackPort([...listening, blueMetrics]),
  };

  const stateDir = resolve(flags.stateDir);
  const devDir = join(stateDir, 'dev');
  // One dev stack per state directory: a second one would open the same
  // PGlite data (which has no lock of its own) and take over the slot file.
  const unlock = await lockDataDir(devDir).catch((error: unknown) => {
    if (error instanceof DataDirBusyError) {
      const who = error.holder ? ` (pid ${error.holder})` : '';
      throw new CommandFailed(
        `${stateDir} is in use by another togather dev${who}: stop it, or give another --state-dir`,
      );
    }
    throw error;
  });
  const paths = statePaths(stateDir);
  mkdirSync(paths.logs, { recursive: true });
  const slotFile = new SlotProcessFile(paths.slots);

  // The proxy's admin key (ADMIN_API_KEY, as every admin client reads it) and
  // the app's API key are different secrets; both generated when not given.
  const givenProxyKey = process.env.ADMIN_API_KEY || undefined;
  const proxyKey = givenProxyKey ?? generateSecret(32);
  const appKey = generateSecret(32);
  const jwtSecret = generateSecret(48);
  const adminPassword = generateSecret(18);
  const redisUrl = process.env.REDIS_URL || undefined;

  const children: Child[] = [];
  let database: DevDatabase | undefined;
  let stopping = false;

  // One way to stop, whenever the request comes: a signal (exit 0) or the
  // proxy dying (exit 1) only records the request and wakes the main flow,
  // which stops everything once, after start-up has stopped creating things.
  let stopCode: number | undefined;
  const stopSignal = new AbortController();
  const stopRequested = new Promise<void>((resolve) =>
    stopSignal.signal.addEventListener('abort', () => resolve(), { once: true }),
  );
  const requestStop = (code: number) => {
    stopCode ??= code;
    // Also ends a `migrate up` still waiting (for the migration lock, say).
    stopSignal.abort();
  };
  const checkpoint = () => {
    if (stopCode !== undefined) throw new StopRequested();
  };

  const say = (text: string) => process.stdout.write(text);

  function start(
    name: string,
    args: string[],
    env: NodeJS.ProcessEnv,
    nodeFlags: readonly string[] = [],
  ): Child {
    checkpoint();
    const log = join(paths.logs, `${name}.log`);
    const fd = openSync(log, 'a', 0o600);
    const child = spawn(process.execPath, [...nodeFlags, CLI, ...args], {
      env: childEnv(env),
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    const entry: Child = { name, process: child, log };
    children.push(entry);
    child.on('exit', (code, signal) => {
      if (stopping) return;
      const how = signal ?? `code ${code}`;
      if (name === 'proxy') {
        process.stderr.write(`togather dev: the proxy exited (${how}); see ${log}. Stopping.\n`);
        requestStop(1);
      } else {
        const current = slotFile.read()[name as Slot];
        // A deploy replacing this slot stops the dev process on purpose.
        if (!current || current.pid !== child.pid) return;
        process.stderr.write(`togather dev: ${name} exited (${how}); see ${log}\n`);
      }
    });
    return entry;
  }

  async function stopAll(): Promise<void> {
    stopping = true;
    say('\nstopping: proxy, slots, database...\n');
    const proxy = children.find((c) => c.name === 'proxy');
    if (proxy?.process.pid && !hasExited(proxy.process))
      await stopProcess(proxy.process.pid, 15_000);
    // Every slot process known, including those a deploy started (detached).
    const known = slotFile.read();
    await Promise.all(
      (['blue', 'green'] as const).map(async (slot) => {
        const entry = known[slot];
        if (entry && isTogatherProcess(entry.pid)) await stopProcess(entry.pid, 15_000);
        await slotFile.set(slot, undefined);
      }),
    );
    await Promise.all(
      children
        .filter((c) => !hasExited(c.process) && c.process.pid)
        .map((c) => stopProcess(c.process.pid!, 15_000)),
    );
    await database?.stop().catch(() => {});
    say('stopped\n');
  }

  const onSignal = () => requestStop(0);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let failure: unknown;
  try {
    let databaseUrl = process.env.DATABASE_URL || undefined;
    if (!databaseUrl) {
      database = await startDevDatabase(join(devDir, 'pgdata'), ports.db);
      databaseUrl = database.url;
    }
    checkpoint();
    const appEnv: Record<string, string> = {
      ENVIRONMENT: 'development',
      DATABASE_URL: databaseUrl,
      DATABASE_POOL_MAX: String(DEV_POOL_MAX),
      JWT_SECRET: jwtSecret,
      ADMIN_API_KEY: appKey,
      ADMIN_PASSWORD: adminPassword,
      SNAPSHOT_DIR: join(devDir, 'snapshots'),
      LOG_LEVEL: process.env.LOG_LEVEL || 'info',
      TRUST_PROXY: '127.0.0.1',
    };

    say(
      `database: ${database ? `PGlite in ${database.dataDir}, served on ${databaseUrl}` : 'DATABASE_URL'}\n`,
    );
    const migrate = await runToEnd(process.execPath, [CLI, 'migrate', 'up'], {
      env: childEnv(appEnv),
      signal: stopSignal.signal,
    });
    checkpoint();
    if (migrate.code !== 0)
      throw new CommandFailed(`togather migrate up failed:\n${migrate.output}`);
    say(`migrations: ${migrate.output.trim().split('\n').pop() ?? 'applied'}\n`);

    for (const slot of ['blue', 'green'] as const) {
      const child = start(slot, ['serve'], {
        ...appEnv,
        SLOT: slot,
        SERVER_HOST: '127.0.0.1',
        SERVER_PORT: String(ports[slot]),
        METRICS_PORT: String(metricsPorts[slot]),
      });
      await slotFile.set(slot, {
        pid: child.process.pid!,
        port: ports[slot],
        build: BUILD_DIR,
        version: buildInfo().version,
        started_at: new Date().toISOString(),
        log: child.log,
        started_by: 'dev',
      });
    }
    const proxyEnv: Record<string, string> = {
      PROXY_HOST: '127.0.0.1',
      PROXY_PORT: String(ports.proxy),
      ADMIN_HOST: '127.0.0.1',
      ADMIN_PORT: String(ports.admin),
      ADMIN_API_KEY: proxyKey,
      BLUE_URL: `http://127.0.0.1:${ports.blue}`,
      GREEN_URL: `http://127.0.0.1:${ports.green}`,
      STATE_FILE: join(devDir, 'proxy-state.json'),
      LOG_LEVEL: process.env.LOG_LEVEL || 'info',
      ...(redisUrl ? { REDIS_URL: redisUrl } : {}),
    };
    start('proxy', ['proxy'], proxyEnv, withProxyNodeFlags([], process.env.NODE_OPTIONS));

    const base = {
      blue: `http://127.0.0.1:${ports.blue}`,
      green: `http://127.0.0.1:${ports.green}`,
      proxy: `http://127.0.0.1:${ports.proxy}`,
      admin: `http://127.0.0.1:${ports.admin}`,
    };
    await waitFor('blue', () => healthy(`${base.blue}/health`), checkpoint);
    await waitFor('green', () => healthy(`${base.green}/health`), checkpoint);
    await waitFor('proxy', () => answers(`${base.admin}/healthz`), checkpoint);
    await waitFor('proxy', () => healthy(`${base.proxy}/health`), checkpoint);

    // What `togather deploy --runner local` needs to roll out to this stack.
    const deployEnv = join(devDir, 'deploy.env');
    writeFileSync(
      deployEnv,
      [
        '# Written by `togather dev` for `togather deploy --runner local` against this stack.',
        ...Object.entries({
          ...appEnv,
          PROXY_ADMIN_API_KEY: proxyKey,
          ADMIN_URL: base.admin,
          PROXY_URL: base.proxy,
          BLUE_PORT: String(ports.blue),
          GREEN_PORT: String(ports.green),
          BLUE_METRICS_PORT: String(metricsPorts.blue),
          GREEN_METRICS_PORT: String(metricsPorts.green),
          DEPLOY_STATE_DIR: stateDir,
          // pg_dump cannot dump PGlite: snapshots only with a real DATABASE_URL.
          ...(database ? { DEPLOY_SKIP_SNAPSHOT: 'on' } : {}),
          ...(redisUrl ? { REDIS_URL: redisUrl } : {}),
        }).map(([k, v]) => `${k}=${quoteEnv(v)}`),
        '',
      ].join('\n'),
      { mode: 0o600 },
    );

    say(
      [
        '',
        'togather dev is running (Ctrl-C stops everything)',
        `  proxy      ${base.proxy}   (store: ${redisUrl ? 'redis' : `file ${proxyEnv.STATE_FILE}`})`,
        `  admin API  ${base.admin}   (127.0.0.1 only)`,
        `  blue       ${base.blue}   (metrics http://127.0.0.1:${metricsPorts.blue}/metrics)`,
        `  green      ${base.green}   (metrics http://127.0.0.1:${metricsPorts.green}/metrics)`,
        `  logs       ${paths.logs}/{blue,green,proxy}.log`,
        '',
        givenProxyKey
          ? '  proxy admin key: ADMIN_API_KEY from the environment'
          : `  proxy admin key (generated, shown once): ${proxyKey}`,
        `  app API key     (generated, shown once): ${appKey}`,
        '',
        'try:',
        `  curl -i ${base.proxy}/health`,
        `  curl -s ${base.proxy}/version`,
        `  curl -s -X POST ${base.proxy}/api/v1/events -H "Authorization: Bearer ${appKey}" -H 'Content-Type: application/json' -d '{"name":"Launch","startDate":"2030-01-01T18:00:00Z"}'`,
        `  curl -s ${base.proxy}/api/v1/events`,
        `  curl -s ${base.admin}/admin/status -H "Authorization: Bearer ${proxyKey}"`,
        `  curl -s -X POST "${base.admin}/admin/switch?slot=green" -H "Authorization: Bearer ${proxyKey}"`,
        '',
        'the togather CLI, from another shell (npx runs the one of this checkout):',
        `  cd ${shellQuote(PACKAGE_DIR.replace(/\/$/, ''))}`,
        givenProxyKey
          ? `  export ADMIN_URL=${base.admin}   # and ADMIN_API_KEY, the key given to togather dev`
          : `  export ADMIN_URL=${base.admin} ADMIN_API_KEY=${proxyKey}`,
        '  npx togather status',
        '  npx togather switch green',
        `  npx togather deploy --runner local --build dist --env ${shellQuote(deployEnv)}`,
        '',
      ].join('\n'),
    );
    await stopRequested;
  } catch (error) {
    if (!(error instanceof StopRequested)) failure = error;
  }

  await stopAll();
  await unlock();
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  if (failure !== undefined) throw failure;
  if (stopCode !== 0)
    throw new CommandFailed('togather dev stopped because a part of the stack failed');
}

/** Start-up noticed a stop request: everything started so far is stopped, nothing more starts. */
class StopRequested extends Error {
  override name = 'StopRequested';
}

/** A path as one shell word. */
function shellQuote(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

function quoteEnv(value: string): string {
  return /^[\w@%+=:,./-]*$/.test(value) ? value : `"${value.replace(/(["\\])/g, '\\$1')}"`;
}

async function healthy(url: string): Promise<boolean> {
  return isHealthy(await probe(url, 2_000));
}

async function answers(url: string): Promise<boolean> {
  return (await probe(url, 2_000)).status === 200;
}

async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  checkpoint: () => void,
): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    checkpoint();
    if (await check()) return;
    await sleep(100);
  }
  throw new CommandFailed(`${what} did not become healthy within 60 s; see the logs`);
}

/** A port the kernel says is free on 127.0.0.1 now, other than those given. */
async function freeLoopbackPort(avoid: readonly number[]): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        const picked = typeof address === 'object' && address ? address.port : 0;
        server.close(() => resolve(picked));
      });
    });
    if (!avoid.includes(port)) return port;
  }
}

/** A child's environment: only what it is given, plus PATH and HOME. */
function childEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env };
}
