import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeploymentRecord } from '../../deploy/records/deployment-record.js';
import { processAlive } from '../../common/process-alive.js';
import {
  deploySecrets,
  killSlotProcesses,
  makeFakeBuild,
  makeRelease,
  secret,
  tempDir,
  writeEnvFile,
  localDeployArgs,
  DEPLOY_STEPS,
} from '../support/deploy-fixtures.js';
import { startLoad } from '../support/load.js';
import { freePorts } from '../../harness/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { runCli, startCli, waitForHttp } from '../support/processes.js';
import { WatchedProcess } from '../../harness/child-process.js';

// End to end with the local runner: the real proxy, real PostgreSQL, real
// `togather serve` processes of two releases, and `togather deploy` itself.
const dir = tempDir('deploy-local');
const stateDir = join(dir.path, 'state');
let db: TestDatabase;
let proxy: WatchedProcess;
let envFile: string;
let proxyUrl: string;
let adminUrl: string;
let greenUrl: string;
const proxyKey = secret(32);

/** What the green slot answers on its own port, and what the slot record says of it. */
async function green(): Promise<{ serves: string; recorded: string | null | undefined }> {
  const response = await fetch(`${greenUrl}/version`);
  const body = (await response.json()) as { version: string };
  const slots = JSON.parse(readFileSync(join(stateDir, 'slots.json'), 'utf8')) as Record<
    string,
    { version: string | null }
  >;
  return { serves: body.version, recorded: slots.green?.version };
}

async function proxyVersion(): Promise<{ version: string; slot: string | null }> {
  const response = await fetch(`${proxyUrl}/version`);
  const body = (await response.json()) as { version: string };
  return { version: body.version, slot: response.headers.get('x-togather-slot') };
}

async function adminStatus(): Promise<{ active: string; epoch: number }> {
  const response = await fetch(`${adminUrl}/admin/status`, {
    headers: { authorization: `Bearer ${proxyKey}` },
  });
  return (await response.json()) as { active: string; epoch: number };
}

async function history(): Promise<DeploymentRecord[]> {
  const r = await runCli(['deploy', 'history', '--env', envFile, '--json']);
  expect(r.code).toBe(0);
  return (JSON.parse(r.stdout) as { deployments: DeploymentRecord[] }).deployments;
}

function deploy(build: string, extra: string[] = []) {
  return runCli(
    [
      ...localDeployArgs(envFile, build),
      '--health-interval',
      '200ms',
      // generous for a busy machine: a slot that starts slowly is not a failure
      '--health-retries',
      '150',
      '--verify-seconds',
      '3',
      ...extra,
    ],
    {},
    { timeoutMs: 120_000 },
  );
}

beforeAll(async () => {
  db = await createTestDatabase();
  const [proxyPort, adminPort, bluePort, greenPort] = await freePorts(4);
  proxyUrl = `http://127.0.0.1:${proxyPort}`;
  adminUrl = `http://127.0.0.1:${adminPort}`;
  greenUrl = `http://127.0.0.1:${greenPort}`;
  envFile = writeEnvFile(join(dir.path, 'deploy.env'), {
    ENVIRONMENT: 'production',
    DATABASE_URL: db.url,
    DATABASE_POOL_MAX: '4',
    ...deploySecrets(proxyKey),
    SNAPSHOT_DIR: join(dir.path, 'snapshots'),
    GRACEFUL_SHUTDOWN_TIMEOUT_SECONDS: '5',
    LOG_LEVEL: 'warn',
    ADMIN_URL: adminUrl,
    PROXY_URL: proxyUrl,
    BLUE_PORT: String(bluePort),
    GREEN_PORT: String(greenPort),
    DEPLOY_STATE_DIR: stateDir,
  });
  proxy = startCli(['proxy'], {
    PROXY_HOST: '127.0.0.1',
    PROXY_PORT: String(proxyPort),
    ADMIN_PORT: String(adminPort),
    ADMIN_API_KEY: proxyKey,
    BLUE_URL: `http://127.0.0.1:${bluePort}`,
    GREEN_URL: `http://127.0.0.1:${greenPort}`,
    STATE_FILE: join(dir.path, 'proxy-state.json'),
    DRAIN_TIMEOUT: '5s',
    ACCESS_LOG: 'off',
    LOG_LEVEL: 'warn',
  });
  await waitForHttp(`${adminUrl}/healthz`);
});

afterAll(async () => {
  await proxy?.stop();
  killSlotProcesses(stateDir);
  await db?.drop();
  dir.cleanup();
}, 60_000);

describe('togather deploy --runner local', () => {
  it('deploys version B over A under load: no failed request, traffic ends on B, history records it', async () => {
    const releaseA = makeRelease(dir.path, '1.0.0');
    const releaseB = makeRelease(dir.path, '1.1.0');

    // A first: blue (the default) runs nothing yet, so A goes to green.
    const first = await deploy(releaseA);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^snapshot\s+ok\s/m);
    expect(first.stdout).toMatch(/^migrate\s+ok\s/m);
    expect(first.stdout).toMatch(/^deployed 1\.0\.0 \(blue -> green\)/m);
    expect(await proxyVersion()).toEqual({ version: '1.0.0', slot: 'green' });

    const load = startLoad(`${proxyUrl}/version`, 8);
    await new Promise((r) => setTimeout(r, 1_000));
    const second = await deploy(releaseB);
    await new Promise((r) => setTimeout(r, 500));
    const result = await load.stop();
    process.stdout.write(
      `\n--- local deploy of 1.1.0 under load ---\n${second.stdout}load: ${JSON.stringify(result)}\n`,
    );

    expect(second.stderr).toBe('');
    expect(second.code).toBe(0);
    for (const step of DEPLOY_STEPS.filter((s) => s !== 'stop-old')) {
      expect(second.stdout).toMatch(new RegExp(`^${step}\\s+ok\\s+[\\d.]+ m?s  `, 'm'));
    }
    expect(second.stdout).toMatch(
      /^stop-old\s+skipped\s.*green kept running for instant rollback/m,
    );
    expect(second.stdout).toMatch(
      /^deployed 1\.1\.0 \(green -> blue\) in [\d.]+ m?s; green kept for rollback$/m,
    );

    expect(result.requests).toBeGreaterThan(100);
    expect(result.errors).toBe(0);
    expect(result.timeouts).toBe(0);
    expect(result.non2xx).toBe(0);
    expect(Object.keys(result.slots).sort()).toEqual(['blue', 'green']);
    expect(result.lastSlot).toBe('blue');
    expect(await proxyVersion()).toEqual({ version: '1.1.0', slot: 'blue' });

    const [latest, previous] = await history();
    expect(latest).toMatchObject({
      version: '1.1.0',
      from_slot: 'green',
      to_slot: 'blue',
      result: 'deployed',
      reason: null,
      rollback_reason: null,
      runner: 'local',
    });
    expect(latest!.steps.map((s) => [s.name, s.status])).toEqual([
      ['validate', 'ok'],
      ['lock', 'ok'],
      ['active', 'ok'],
      ['snapshot', 'ok'],
      ['migrate', 'ok'],
      ['start', 'ok'],
      ['health', 'ok'],
      ['switch', 'ok'],
      ['verify', 'ok'],
      ['stop-old', 'skipped'],
    ]);
    expect(previous).toMatchObject({ version: '1.0.0', to_slot: 'green', result: 'deployed' });
  });

  it('a version whose /health fails is never switched to: blue keeps all traffic, exit 1 with the reason', async () => {
    const broken = makeFakeBuild(dir.path, '2.0.0', 'unhealthy');
    const before = await adminStatus();
    const load = startLoad(`${proxyUrl}/version`, 4);
    const r = await deploy(broken, ['--health-retries', '10']);
    const result = await load.stop();
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^health\s+FAILED\s/m);
    expect(r.stdout).not.toMatch(/^switch\s/m);
    expect(r.stderr).toBe(
      'togather: deploy of 2.0.0 failed: health: green not healthy after 10 checks: /health 503 unhealthy, database: fail (test build: broken)\n',
    );
    expect(result.errors + result.non2xx).toBe(0);
    expect(result.slots).toEqual({ blue: result.requests });
    expect(await adminStatus()).toMatchObject({ active: 'blue', epoch: before.epoch });
    expect(await proxyVersion()).toEqual({ version: '1.1.0', slot: 'blue' });
    const [latest] = await history();
    expect(latest).toMatchObject({
      version: '2.0.0',
      result: 'failed',
      to_slot: 'green',
      rollback_reason: null,
    });
    expect(latest!.reason).toMatch(/^health: green not healthy/);
    // The failed build is not left on green: the 1.0.0 it held before serves there again.
    expect(r.stdout).toMatch(
      /^restore\s+ok\s.*green serves 1\.0\.0 again \(pid \d+, \S+release-1\.0\.0\/dist\): the new pid \d+ stopped$/m,
    );
    expect(await green()).toEqual({ serves: '1.0.0', recorded: '1.0.0' });
  });

  it('--version that the build does not report fails the health gate; no slot record claims it', async () => {
    const release = makeRelease(dir.path, '0.1.0');
    const r = await deploy(release, ['--version', '9.9.9', '--skip-snapshot']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /^health\s+FAILED\s.*green reports version 0\.1\.0, not 9\.9\.9 as --version says$/m,
    );
    expect(r.stdout).not.toMatch(/^switch\s/m);
    expect(r.stderr).toBe(
      'togather: deploy of 9.9.9 failed: health: green reports version 0.1.0, not 9.9.9 as --version says\n',
    );
    expect(r.stdout).toMatch(/^restore\s+ok\s.*green serves 1\.0\.0 again/m);
    expect(await green()).toEqual({ serves: '1.0.0', recorded: '1.0.0' });
    expect(readFileSync(join(stateDir, 'slots.json'), 'utf8')).not.toContain('9.9.9');
    expect(await proxyVersion()).toEqual({ version: '1.1.0', slot: 'blue' });
  });

  it('a version that turns to 500s after the switch is rolled back within the verify window, exit 1', async () => {
    const breaking = makeFakeBuild(dir.path, '3.0.0', 'fails-behind-proxy');
    const r = await deploy(breaking, ['--verify-seconds', '30']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^switch\s+ok\s.*blue -> green/m);
    expect(r.stdout).toMatch(/^verify\s+FAILED\s/m);
    expect(r.stdout).toMatch(/^rollback\s+ok\s.*green -> blue/m);
    expect(r.stderr).toMatch(
      /^togather: rolled back: 3\.0\.0 was switched to and failed \(verify: \/health through the proxy answered 503 unhealthy, database: fail \(test build: broken\)\); traffic is back on blue\n$/,
    );
    expect(await proxyVersion()).toEqual({ version: '1.1.0', slot: 'blue' });
    expect((await adminStatus()).active).toBe('blue');

    const [latest] = await history();
    expect(latest).toMatchObject({
      version: '3.0.0',
      result: 'rolled_back',
      from_slot: 'blue',
      to_slot: 'green',
    });
    expect(latest!.rollback_reason).toBe(
      'verify: /health through the proxy answered 503 unhealthy, database: fail (test build: broken)',
    );
    const verify = latest!.steps.find((s) => s.name === 'verify')!;
    expect(verify.status).toBe('failed');
    expect(verify.duration_ms).toBeLessThan(30_000); // rolled back inside the window, not after it
    expect(latest!.steps.find((s) => s.name === 'restore')).toMatchObject({ status: 'ok' });
    expect(await green()).toEqual({ serves: '1.0.0', recorded: '1.0.0' });

    const status = await runCli(['deploy', 'status', '--env', envFile]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^rolled back: 3\.0\.0 was switched to and failed/);
    expect(status.stdout).toMatch(/^deploy lock: free$/m);
  });

  it('--stop-old stops the old slot once the new one is verified', async () => {
    const releaseC = makeRelease(dir.path, '1.2.0');
    const oldBlue = JSON.parse(readFileSync(join(stateDir, 'slots.json'), 'utf8')).blue as {
      pid: number;
    };
    const r = await deploy(releaseC, ['--stop-old', '--skip-snapshot']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^snapshot\s+skipped\s.*--skip-snapshot$/m);
    expect(r.stdout).toMatch(
      new RegExp(`^stop-old\\s+ok\\s.*blue pid ${oldBlue.pid} \\(1\\.1\\.0\\) stopped`, 'm'),
    );
    expect(r.stdout).toMatch(
      /^deployed 1\.2\.0 \(blue -> green\) in [\d.]+ m?s; blue stopped \(--stop-old\)$/m,
    );
    expect(await proxyVersion()).toEqual({ version: '1.2.0', slot: 'green' });
    expect(processAlive(oldBlue.pid)).toBe(false);
    expect(JSON.parse(readFileSync(join(stateDir, 'slots.json'), 'utf8')).blue).toBeUndefined();
  });

  it('deploy status shows the latest deployment, its steps and a free lock', async () => {
    const status = await runCli(['deploy', 'status', '--env', envFile]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(
      /^deployed 1\.2\.0 \(blue -> green\) in [\d.]+ m?s; blue stopped \(--stop-old\)\n/,
    );
    expect(status.stdout).toMatch(/^ {2}verify\s+ok\s/m);
    expect(status.stdout).toMatch(/^deploy lock: free$/m);
    const listed = await history();
    expect(listed.map((r) => [r.version, r.result])).toEqual([
      ['1.2.0', 'deployed'],
      ['3.0.0', 'rolled_back'],
      ['9.9.9', 'failed'],
      ['2.0.0', 'failed'],
      ['1.1.0', 'deployed'],
      ['1.0.0', 'deployed'],
    ]);
  });
});
