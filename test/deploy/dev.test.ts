import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { processAlive } from '../../common/process-alive.js';
import { PROXY_NODE_FLAGS } from '../../proxy/heap-tuning.js';
import { MIGRATION_LOCK_KEYS } from '../../server/migrate.js';
import { killSlotProcesses, makeRelease, tempDir } from '../support/deploy-fixtures.js';
import { freePorts, waitForPort } from '../../harness/ports.js';
import { createTestDatabase } from '../support/postgres.js';
import { runCli, startCli } from '../support/processes.js';
import { WatchedProcess } from '../../harness/child-process.js';
import { until } from '../support/wait.js';

const dir = tempDir('dev');
const stateDir = join(dir.path, 'state');
let dev: WatchedProcess | undefined;

afterAll(async () => {
  await dev?.stop('SIGKILL');
  killSlotProcesses(stateDir);
  dir.cleanup();
}, 60_000);

/** `togather dev` on four given ports (proxy, admin, blue, green) and its own state dir. */
function startDev(ports: number[], state: string, env: Record<string, string> = {}) {
  const [proxy, admin, blue, green] = ports.map(String);
  return startCli(
    [
      'dev',
      ...['--proxy-port', proxy!, '--admin-port', admin!],
      ...['--blue-port', blue!, '--green-port', green!],
      ...['--state-dir', state],
    ],
    env,
    dir.path,
  );
}

async function portClosed(port: number): Promise<boolean> {
  return waitForPort(port, 200).then(
    () => false,
    () => true,
  );
}

/** The block of `togather` CLI commands dev prints for another shell, as lines. */
function cliBlock(out: string): string[] {
  const start = out.indexOf('the togather CLI, from another shell');
  expect(start).toBeGreaterThan(-1);
  const lines = out.slice(start).split('\n').slice(1);
  const block = lines.slice(0, lines.indexOf('')).map((line) => line.trim());
  expect(block[0]).toMatch(/^cd /);
  expect(block[1]).toMatch(/^export ADMIN_URL=http:\/\/127\.0\.0\.1:\d+ ADMIN_API_KEY=\S+$/);
  expect(block.slice(2).every((line) => line.startsWith('npx togather '))).toBe(true);
  return block;
}

/**
 * Runs pasted lines as a new shell would: started elsewhere (a temp dir),
 * with nothing of this test's environment but a PATH that has npm's npx and
 * no node_modules/.bin (npx adds the checkout's own, as it does for a user).
 */
function runPasted(
  lines: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const path = (process.env.PATH ?? '')
    .split(':')
    .filter((entry) => entry && !entry.includes('node_modules'))
    .join(':');
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', ['set -e', ...lines].join('\n')], {
      cwd: dir.path,
      env: { PATH: path, HOME: process.env.HOME ?? dir.path },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('togather dev', () => {
  it('starts the whole stack with no configuration, answers through the proxy, takes a local deploy, prints CLI lines that work in a new shell, stops on SIGINT', async () => {
    const ports = await freePorts(4);
    const [proxyPort, adminPort, , greenPort] = ports;
    const proxyUrl = `http://127.0.0.1:${proxyPort}`;
    const adminUrl = `http://127.0.0.1:${adminPort}`;
    dev = startDev(ports, stateDir);
    await dev.waitFor(/togather dev is running/, 90_000);
    const out = dev.stdout;
    const proxyKey = /proxy admin key \(generated, shown once\): (\S+)/.exec(out)?.[1];
    const appKey = /app API key\s+\(generated, shown once\): (\S+)/.exec(out)?.[1];
    expect(proxyKey).toMatch(/^[\w-]{32,}$/);
    expect(appKey).toMatch(/^[\w-]{32,}$/);
    expect(appKey).not.toBe(proxyKey);
    // the key line, two curl commands and the export line, once each
    expect(out.split(proxyKey!).length - 1).toBe(4);
    expect(out).toContain(`proxy      ${proxyUrl}`);
    // The proxy child runs with the proxy node flags (V8 reads them from the command line only).
    const children = readFileSync(`/proc/${dev.pid}/task/${dev.pid}/children`, 'utf8')
      .trim()
      .split(' ')
      .map((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean));
    const proxyArgv = children.find((argv) => argv.at(-1) === 'proxy');
    expect(proxyArgv, JSON.stringify(children)).toEqual([
      expect.any(String),
      ...PROXY_NODE_FLAGS,
      expect.stringMatching(/togather\.js$/),
      'proxy',
    ]);
    expect(out).toContain(`admin API  ${adminUrl}   (127.0.0.1 only)`);
    expect(out).toContain(`curl -i ${proxyUrl}/health`);
    // Each slot's /metrics on a port of its own, printed; never on the slot's own port.
    const metricsPort: Record<string, number> = {};
    for (const slot of ['blue', 'green']) {
      const port = ports[slot === 'blue' ? 2 : 3];
      const line = new RegExp(
        `^  ${slot} +http://127\\.0\\.0\\.1:${port} +\\(metrics http://127\\.0\\.0\\.1:(\\d+)/metrics\\)$`,
        'm',
      ).exec(out);
      expect(line, `${slot} line in:\n${out}`).not.toBeNull();
      metricsPort[slot] = Number(line![1]);
      const metrics = await fetch(`http://127.0.0.1:${metricsPort[slot]}/metrics`);
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toMatch(
        new RegExp(`^togather_app_info\\{.*slot="${slot}"\\} 1$`, 'm'),
      );
      expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(404);
    }
    expect(metricsPort.blue).not.toBe(metricsPort.green);
    expect((await fetch(`${proxyUrl}/metrics`)).status).toBe(404);
    expect(out).toContain(
      `curl -s -X POST "${adminUrl}/admin/switch?slot=green" -H "Authorization: Bearer ${proxyKey}"`,
    );

    // A second dev stack on the same state directory is refused before it touches anything.
    const second = await runCli(
      [
        'dev',
        ...(await freePorts(4)).flatMap((port, i) => [
          ['--proxy-port', '--admin-port', '--blue-port', '--green-port'][i]!,
          String(port),
        ]),
        ...['--state-dir', stateDir],
      ],
      {},
      { cwd: dir.path },
    );
    expect(second.code).toBe(1);
    expect(second.stderr).toBe(
      `togather: ${stateDir} is in use by another togather dev (pid ${dev.pid}): stop it, or give another --state-dir\n`,
    );

    const health = await fetch(`${proxyUrl}/health`);
    expect(health.status).toBe(200);
    expect(health.headers.get('x-togather-slot')).toBe('blue');

    // Both slots share the one PGlite database, served over the wire protocol.
    const created = await fetch(`${proxyUrl}/api/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${appKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Dev launch', startDate: '2030-01-01T18:00:00Z' }),
    });
    expect(created.status).toBe(201);
    const fromGreen = await fetch(`http://127.0.0.1:${greenPort}/api/v1/events`);
    expect(JSON.stringify(await fromGreen.json())).toContain('Dev launch');

    // togather deploy --runner local against it: the idle green gets the new release.
    const release = makeRelease(dir.path, '9.9.9-dev');
    const deployed = await runCli(
      [
        'deploy',
        '--runner',
        'local',
        '--env',
        join(stateDir, 'dev', 'deploy.env'),
        '--build',
        release,
        '--health-interval',
        '200ms',
        '--health-retries',
        '150',
        '--verify-seconds',
        '2',
      ],
      {},
      { timeoutMs: 120_000 },
    );
    expect(deployed.stderr).toBe('');
    expect(deployed.code).toBe(0);
    expect(deployed.stdout).toMatch(/^snapshot\s+skipped\s/m);
    expect(deployed.stdout).toMatch(/^deployed 9\.9\.9-dev \(blue -> green\)/m);
    const version = await fetch(`${proxyUrl}/version`);
    expect(version.headers.get('x-togather-slot')).toBe('green');
    expect(((await version.json()) as { version: string }).version).toBe('9.9.9-dev');
    // The new green serves its metrics where dev said green's are.
    const greenMetrics = await (
      await fetch(`http://127.0.0.1:${metricsPort.green}/metrics`)
    ).text();
    expect(greenMetrics).toMatch(/^togather_app_info\{version="9\.9\.9-dev",.*slot="green"\} 1$/m);
    const slots = JSON.parse(readFileSync(join(stateDir, 'slots.json'), 'utf8')) as Record<
      string,
      { pid: number; started_by: string }
    >;
    expect(slots.green!.started_by).toBe('deploy');

    // The CLI lines it printed work as they are, pasted into a new shell.
    const pasted = await runPasted(cliBlock(out));
    expect(pasted.stdout).toMatch(/^active: {4}green \(epoch \d+/m);
    expect(pasted.stdout).toMatch(/^green is already active \(epoch \d+\); nothing changed$/m);
    expect(pasted.stdout).toMatch(/^deployed 0\.1\.0 \(green -> blue\)/m);
    expect(pasted.stderr).not.toContain('command not found');
    expect(pasted.code).toBe(0);
    const after = JSON.parse(readFileSync(join(stateDir, 'slots.json'), 'utf8')) as Record<
      string,
      { pid: number }
    >;

    // Ctrl-C: everything stops, including the slots the deploys started.
    const exit = await dev.stop('SIGINT', 30_000);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(dev.stdout).toContain('stopped\n');
    expect(processAlive(slots.green!.pid)).toBe(false);
    expect(processAlive(slots.blue!.pid)).toBe(false);
    expect(processAlive(after.blue!.pid)).toBe(false);
    for (const port of ports) expect(await portClosed(port)).toBe(true);
    dev = undefined;
  }, 240_000);

  it('Ctrl-C during start-up stops what was started and starts nothing more', async () => {
    // The migration lock held here keeps dev's `migrate up` waiting: the
    // signal arrives mid start-up, and must not wait for the lock either.
    const db = await createTestDatabase();
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    const ports = await freePorts(4);
    const startupState = join(dir.path, 'state-startup');
    let early: WatchedProcess | undefined;
    try {
      await holder.query('SELECT pg_advisory_lock($1, $2)', [...MIGRATION_LOCK_KEYS]);
      const starting = startDev(ports, startupState, { DATABASE_URL: db.url });
      early = starting;
      const exited = () => !starting.running;
      let waiting = false;
      // An exit of dev ends the wait at once.
      await until(
        async () => {
          if (exited()) return true;
          // This database only: another test's migrate may be waiting elsewhere in the cluster.
          const found = await holder.query(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = 'togather-migrate' AND datname = current_database()",
          );
          waiting = Boolean(found.rowCount);
          return waiting;
        },
        { timeout: 30_000, interval: 50 },
      ).catch(() => undefined);
      if (!waiting) {
        const how = exited() ? 'exited' : 'still runs';
        throw new Error(`migrate never started (dev ${how}):\n${early.stdout}\n${early.stderr}`);
      }
      const exit = await early.stop('SIGINT', 30_000);
      expect(exit).toEqual({ code: 0, signal: null });
      expect(early.stdout).toMatch(/stopped\n$/);
      expect(early.stdout).not.toContain('togather dev is running');
      expect(early.stderr).toBe('');
      for (const port of ports) expect(await portClosed(port)).toBe(true);
    } finally {
      await early?.stop('SIGKILL');
      killSlotProcesses(startupState);
      await holder.end();
      await db.drop();
    }
  });

  it('bad ports exit 2', async () => {
    const r = await runCli(['dev', '--proxy-port', 'eighty']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('togather: --proxy-port: "eighty" is not a port\n');
    const same = await runCli(['dev', '--proxy-port', '18080', '--admin-port', '18080']);
    expect(same.code).toBe(2);
    expect(same.stderr).toBe('togather: the four ports must differ\n');
  });
});
