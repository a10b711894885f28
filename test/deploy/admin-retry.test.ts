import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminFaults } from '../support/admin-faults.js';
import {
  deploySecrets,
  killSlotProcesses,
  makeFakeBuild,
  secret,
  tempDir,
  writeEnvFile,
} from '../support/deploy-fixtures.js';
import { freePorts } from '../../harness/ports.js';
import { startCli, waitForHttp } from '../support/processes.js';
import { until } from '../support/wait.js';
import { WatchedProcess } from '../../harness/child-process.js';
import { RedisProcess } from '../../harness/redis-process.js';

// `togather deploy --runner local` against a real proxy (its admin API
// behind AdminFaults, a relay that can answer a switch call itself), with
// test builds (real node:http servers) on the slots: no database needed.
const dir = tempDir('deploy-admin-retry');
let redis: RedisProcess;
let stack: Stack;

type Slot = 'blue' | 'green';

/** A proxy with two slots managed by deploys, and the env file of those deploys. */
class Stack {
  readonly key = secret(32);
  readonly stateDir: string;
  readonly envFile: string;
  proxy!: WatchedProcess;
  faults!: AdminFaults;
  proxyUrl!: string;
  adminUrl!: string;
  private builds = 0;

  constructor(readonly name: string) {
    this.stateDir = join(dir.path, `state-${name}`);
    this.envFile = join(dir.path, `${name}.env`);
  }

  async start(redisUrl?: string): Promise<this> {
    const [proxyPort, adminPort, bluePort, greenPort] = await freePorts(4);
    this.proxyUrl = `http://127.0.0.1:${proxyPort}`;
    this.adminUrl = `http://127.0.0.1:${adminPort}`;
    this.proxy = startCli(['proxy'], {
      PROXY_HOST: '127.0.0.1',
      PROXY_PORT: String(proxyPort),
      ADMIN_PORT: String(adminPort),
      ADMIN_API_KEY: this.key,
      BLUE_URL: `http://127.0.0.1:${bluePort}`,
      GREEN_URL: `http://127.0.0.1:${greenPort}`,
      STATE_FILE: join(dir.path, `${this.name}-proxy-state.json`),
      ...(redisUrl ? { REDIS_URL: redisUrl, REDIS_KEY_PREFIX: `${this.name}-${secret(4)}:` } : {}),
      DRAIN_TIMEOUT: '1s',
      ACCESS_LOG: 'off',
      LOG_LEVEL: 'warn',
    });
    await waitForHttp(`${this.adminUrl}/healthz`);
    this.faults = await AdminFaults.start(this.adminUrl);
    writeEnvFile(this.envFile, {
      // never reached: the test builds need no database
      DATABASE_URL: 'postgres://togather@127.0.0.1:1/togather',
      ...deploySecrets(this.key),
      ADMIN_URL: this.faults.url,
      PROXY_URL: this.proxyUrl,
      BLUE_PORT: String(bluePort),
      GREEN_PORT: String(greenPort),
      DEPLOY_STATE_DIR: this.stateDir,
    });
    // Both slots serve a version, so that a rollback and a restore have a target.
    for (const version of ['1.0.0', '1.1.0']) {
      const first = this.deploy(this.build(version, 'healthy'));
      const exit = await first.exited;
      if (exit.code !== 0) throw new Error(`setup deploy failed:\n${first.stdout}${first.stderr}`);
    }
    return this;
  }

  /** A test build of `version` (each one in its own directory). */
  build(version: string, mode: 'healthy' | 'fails-behind-proxy'): string {
    return makeFakeBuild(join(dir.path, `${this.name}-${++this.builds}`), version, mode);
  }

  deploy(build: string, extra: string[] = []): WatchedProcess {
    return startCli([
      'deploy',
      '--runner',
      'local',
      '--env',
      this.envFile,
      '--build',
      build,
      '--skip-snapshot',
      '--skip-migrations',
      '--health-interval',
      '100ms',
      '--health-retries',
      '100',
      '--verify-seconds',
      '1',
      ...extra,
    ]);
  }

  /** The slot and version that answer through the proxy (its public side: never rate limited). */
  async serving(): Promise<{ slot: Slot; version: string }> {
    const response = await fetch(`${this.proxyUrl}/version`);
    const body = (await response.json()) as { version: string };
    return { slot: response.headers.get('x-togather-slot') as Slot, version: body.version };
  }

  slotVersion(slot: Slot): string | null | undefined {
    const slots = JSON.parse(readFileSync(join(this.stateDir, 'slots.json'), 'utf8')) as Record<
      string,
      { version: string | null }
    >;
    return slots[slot]?.version;
  }

  async close(): Promise<void> {
    await this.faults?.close();
    await this.proxy?.stop();
    killSlotProcesses(this.stateDir);
  }
}

const other = (slot: Slot): Slot => (slot === 'blue' ? 'green' : 'blue');

beforeAll(async () => {
  redis = await RedisProcess.start();
  stack = await new Stack('main').start(redis.url);
}, 120_000);

afterAll(async () => {
  await stack?.close();
  await redis?.stop();
  dir.cleanup();
}, 60_000);

describe('togather deploy: switch and rollback calls the proxy answers 429 or 503', () => {
  it("a switch that meets 503s while the proxy's Redis is down is retried, and the deploy completes", async () => {
    stack.faults.reset();
    const before = await stack.serving();
    const to = other(before.slot);
    await redis.kill();
    let deploy: WatchedProcess | undefined;
    try {
      deploy = stack.deploy(stack.build('2.0.0', 'healthy'));
      await until(() => stack.faults.calls.some((c) => c.status === 503), {
        timeout: 20_000,
        what: 'a refused switch',
      });
    } finally {
      await redis.restart();
    }
    const exit = await deploy.exited;
    expect(deploy.stderr).toBe('');
    expect(exit.code).toBe(0);
    expect(deploy.stdout).toMatch(
      new RegExp(
        `^switch\\s+ok\\s.*${before.slot} -> ${to} at epoch \\d+ after \\d+ retr(y|ies) \\(503 store_unavailable\\)$`,
        'm',
      ),
    );
    const statuses = stack.faults.calls.map((c) => c.status);
    expect(statuses[0]).toBe(503);
    expect(statuses.at(-1)).toBe(200);
    expect(await stack.serving()).toEqual({ slot: to, version: '2.0.0' });
    expect(stack.slotVersion(to)).toBe('2.0.0');
  });

  it('a rollback that meets 503s while Redis is down is retried, and traffic goes back', async () => {
    stack.faults.reset();
    const before = await stack.serving();
    const to = other(before.slot);
    const idleBefore = stack.slotVersion(to);
    const deploy = stack.deploy(stack.build('3.0.0', 'fails-behind-proxy'));
    await deploy.waitFor(/^switch\s+ok\s/m, 30_000);
    await redis.kill();
    try {
      await until(() => stack.faults.calls.slice(1).some((c) => c.status === 503), {
        timeout: 20_000,
        what: 'a refused rollback',
      });
    } finally {
      await redis.restart();
    }
    const exit = await deploy.exited;
    expect(exit.code).toBe(1);
    expect(deploy.stdout).toMatch(/^verify\s+FAILED\s/m);
    expect(deploy.stdout).toMatch(
      new RegExp(
        `^rollback\\s+ok\\s.*${to} -> ${before.slot} at epoch \\d+ after \\d+ retr(y|ies) \\(503 store_unavailable\\)$`,
        'm',
      ),
    );
    expect(deploy.stderr).toMatch(
      new RegExp(
        `^togather: rolled back: 3\\.0\\.0 was switched to and failed \\(verify: .*\\); traffic is back on ${before.slot}\\n$`,
      ),
    );
    expect(await stack.serving()).toEqual(before);
    // The failed build does not stay on the idle slot: what served there is back.
    expect(deploy.stdout).toMatch(
      new RegExp(`^restore\\s+ok\\s.*${to} serves ${idleBefore} again \\(pid \\d+`, 'm'),
    );
    expect(stack.slotVersion(to)).toBe(idleBefore);
  });

  it('a 429 with Retry-After is retried no sooner than it says', async () => {
    stack.faults.reset();
    stack.faults.refuse({
      status: 429,
      body: { error: 'too_many_attempts', message: 'retry after 1 s' },
      headers: { 'retry-after': '1' },
    });
    const before = await stack.serving();
    const deploy = stack.deploy(stack.build('4.0.0', 'healthy'));
    const exit = await deploy.exited;
    expect(deploy.stderr).toBe('');
    expect(exit.code).toBe(0);
    expect(deploy.stdout).toMatch(
      /^switch\s+ok\s.* at epoch \d+ after 1 retry \(429 too_many_attempts\)$/m,
    );
    const [refused, accepted] = stack.faults.calls;
    expect([refused!.status, accepted!.status]).toEqual([429, 200]);
    expect(accepted!.at - refused!.at).toBeGreaterThanOrEqual(1_000);
    expect(await stack.serving()).toEqual({ slot: other(before.slot), version: '4.0.0' });
  });

  it('a Retry-After beyond the retry time is not waited for: the deploy fails at once, the idle slot restored', async () => {
    stack.faults.reset();
    stack.faults.refuse({
      status: 429,
      body: { error: 'too_many_attempts', message: 'retry after 60 s' },
      headers: { 'retry-after': '60' },
    });
    const before = await stack.serving();
    const to = other(before.slot);
    const idleBefore = stack.slotVersion(to);
    const deploy = stack.deploy(stack.build('5.0.0', 'healthy'), ['--switch-retry-time', '2s']);
    const exit = await deploy.exited;
    expect(exit.code).toBe(1);
    expect(stack.faults.calls.map((c) => c.status)).toEqual([429]);
    expect(deploy.stderr).toBe(
      `togather: deploy of 5.0.0 failed: switch: the proxy refused the switch to ${to} (429 too_many_attempts): retry after 60 s; not retried: Retry-After 60.0 s is beyond the 2.0 s retry time\n`,
    );
    expect(deploy.stdout).toMatch(
      new RegExp(`^restore\\s+ok\\s.*${to} serves ${idleBefore} again`, 'm'),
    );
    expect(await stack.serving()).toEqual(before);
  });

  it('503s that do not end are retried with backoff until the retry time is over, then the deploy fails', async () => {
    stack.faults.reset();
    stack.faults.refuse(
      {
        status: 503,
        body: { error: 'store_unavailable', message: 'the slot store is unavailable' },
      },
      1_000,
    );
    const before = await stack.serving();
    const to = other(before.slot);
    const deploy = stack.deploy(stack.build('6.0.0', 'healthy'), ['--switch-retry-time', '3s']);
    const exit = await deploy.exited;
    expect(exit.code).toBe(1);
    const calls = stack.faults.calls;
    // 250 ms doubling with jitter: at least 3 retries fit in 3 s, and at most 12 (each >= half its step).
    expect(calls.length).toBeGreaterThanOrEqual(4);
    expect(calls.length).toBeLessThanOrEqual(13);
    expect(calls.every((c) => c.status === 503)).toBe(true);
    const spread = calls.at(-1)!.at - calls[0]!.at;
    expect(spread).toBeLessThanOrEqual(3_500);
    // Backing off, not hammering (the last wait may be cut to what is left of the 3 s).
    const gaps = calls.slice(1).map((c, i) => c.at - calls[i]!.at);
    expect(Math.min(...gaps.slice(0, -1))).toBeGreaterThanOrEqual(120);
    expect(deploy.stderr).toMatch(
      new RegExp(
        `^togather: deploy of 6\\.0\\.0 failed: switch: the proxy refused the switch to ${to} \\(503 store_unavailable\\): the slot store is unavailable; gave up after ${calls.length - 1} retries \\(503 store_unavailable\\) in [\\d.]+ s\\n$`,
      ),
    );
    expect(await stack.serving()).toEqual(before);
    stack.faults.reset();
  });

  it.each([
    [400, 'bad_request', 'slot must be blue or green'],
    [401, 'unauthorized', 'wrong admin API key'],
    [409, 'epoch_conflict', 'the slot state changed since epoch 3'],
  ])(
    '%i is not retried: one call, the deploy fails with the answer',
    async (status, code, message) => {
      stack.faults.reset();
      stack.faults.refuse({ status, body: { error: code, message } });
      const before = await stack.serving();
      const to = other(before.slot);
      const deploy = stack.deploy(stack.build(`7.0.${status}`, 'healthy'));
      const exit = await deploy.exited;
      expect(exit.code).toBe(1);
      expect(stack.faults.calls.map((c) => c.status)).toEqual([status]);
      expect(deploy.stderr).toBe(
        `togather: deploy of 7.0.${status} failed: switch: the proxy refused the switch to ${to} (${status} ${code}): ${message}\n`,
      );
      expect(deploy.stdout).toMatch(/^restore\s+ok\s/m);
      expect(await stack.serving()).toEqual(before);
    },
  );
});

describe('togather deploy: a wrong-key burst at the admin API', () => {
  // Needs the proxy's failure limiter never to refuse the correct key (the
  // contract: "a request with the correct key is never refused by it").
  it('a deploy whose rollback meets a burst of 12 wrong-key switch calls still rolls back', async () => {
    const own = await new Stack('burst').start();
    try {
      const before = await own.serving();
      const to = other(before.slot);
      const deploy = own.deploy(own.build('8.0.0', 'fails-behind-proxy'));
      await deploy.waitFor(/^switch\s+ok\s/m, 30_000);
      const burst = await Promise.all(
        Array.from({ length: 12 }, () =>
          fetch(`${own.adminUrl}/admin/switch?slot=${before.slot}`, {
            method: 'POST',
            headers: { authorization: `Bearer ${secret(32)}` },
          }).then((r) => r.status),
        ),
      );
      expect(burst.every((s) => s === 401 || s === 429)).toBe(true);
      const exit = await deploy.exited;
      expect(deploy.stdout).toMatch(
        new RegExp(`^rollback\\s+ok\\s.*${to} -> ${before.slot} at epoch \\d+`, 'm'),
      );
      expect(exit.code).toBe(1);
      expect(deploy.stderr).toMatch(new RegExp(`traffic is back on ${before.slot}\\n$`));
      expect(await own.serving()).toEqual(before);
    } finally {
      await own.close();
    }
  });
});
