import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processAlive } from '../../common/process-alive.js';
import { closedPort, freePort, freePorts } from '../../harness/ports.js';
import { runCli, startCli } from '../support/processes.js';
import {
  deploySecrets,
  killSlotProcesses,
  makeFakeBuild,
  secret,
  tempDir,
  writeEnvFile,
  localDeployArgs,
  DEPLOY_STEPS,
} from '../support/deploy-fixtures.js';
import { RedisProcess } from '../../harness/redis-process.js';

const dir = tempDir('deploy-cli');
let redis: RedisProcess;
let admin: Server;
let adminUrl: string;
const switches: string[] = [];

/** Valid settings for the local runner; tests change one thing at a time. */
function goodEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: 'postgres://togather@127.0.0.1:1/togather',
    ...deploySecrets(),
    ADMIN_URL: adminUrl,
    DEPLOY_STATE_DIR: join(dir.path, 'state'),
    ...extra,
  };
}

beforeAll(async () => {
  redis = await RedisProcess.start();
  // A stand-in for the proxy's admin API (blue active) for the lock tests,
  // whose deploys never get as far as a switch.
  admin = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.url === '/admin/status') {
      res.end(JSON.stringify({ active: 'blue', previous: null, epoch: 0 }));
    } else if (req.url?.startsWith('/admin/switch')) {
      switches.push(req.url);
      res.statusCode = 500;
      res.end(JSON.stringify({ error: 'unexpected', message: 'no switch expected here' }));
    } else {
      res.statusCode = 404;
      res.end('{}');
    }
  });
  const port = await freePort();
  await new Promise<void>((ok) => admin.listen(port, '127.0.0.1', ok));
  adminUrl = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  admin?.close();
  await redis?.stop();
  killSlotProcesses(join(dir.path, 'state'));
  killSlotProcesses(join(dir.path, 'state-redis'));
  dir.cleanup();
});

describe('togather deploy: bad input', () => {
  it('an unknown flag exits 2 with the usage', async () => {
    const r = await runCli(['deploy', '--nope']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("error: unknown option '--nope'");
    expect(r.stderr).toContain('Usage: togather deploy [options] [command]');
  });

  it('a bad runner exits 2 naming the choices', async () => {
    const r = await runCli(['deploy', '--runner', 'docker']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      "error: option '--runner <runner>' argument 'docker' is invalid. Allowed choices are compose, local.",
    );
  });

  it('a missing environment file exits 2', async () => {
    const path = join(dir.path, 'missing.env');
    const r = await runCli(['deploy', '--runner', 'local', '--env', path]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `togather: invalid configuration:\n  - environment file ${path}: not found\n`,
    );
  });

  it('CHANGE_ME left, missing and short variables exit 2, each named, no value printed', async () => {
    const path = writeEnvFile(join(dir.path, 'placeholders.env'), {
      ...goodEnv(),
      JWT_SECRET: 'CHANGE_ME',
      PROXY_ADMIN_API_KEY: 'CHANGE_ME',
      ADMIN_PASSWORD: 'short',
      DATABASE_URL: '',
    });
    const r = await runCli(['deploy', '--runner', 'local', '--env', path]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'togather: invalid configuration:\n' +
        `  - ${path}: CHANGE_ME left in JWT_SECRET, PROXY_ADMIN_API_KEY (replace each with a real value)\n` +
        `  - ${path}: DATABASE_URL is required\n` +
        `  - ${path}: ADMIN_PASSWORD must be at least 12 characters\n`,
    );
  });

  it('deploy/docker/.env.example as it is: every placeholder named, exit 2', async () => {
    const example = fileURLToPath(new URL('../../deploy/docker/.env.example', import.meta.url));
    const r = await runCli(['deploy', '--env', example, '--image', 'togather:1.0.0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'togather: invalid configuration:\n' +
        `  - ${example}: CHANGE_ME left in ADMIN_API_KEY, ADMIN_PASSWORD, GRAFANA_ADMIN_PASSWORD, JWT_SECRET, POSTGRES_PASSWORD, PROXY_ADMIN_API_KEY (replace each with a real value)\n`,
    );
  });

  it('the same key for the proxy and the app exits 2', async () => {
    const key = secret(32);
    const path = writeEnvFile(join(dir.path, 'same-keys.env'), {
      ...goodEnv(),
      ADMIN_API_KEY: key,
      PROXY_ADMIN_API_KEY: key,
    });
    const r = await runCli(['deploy', '--runner', 'local', '--env', path]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `togather: invalid configuration:\n  - ${path}: PROXY_ADMIN_API_KEY and ADMIN_API_KEY must be different secrets\n`,
    );
  });

  it('compose without --image, local with a build that is not one, and bad numbers exit 2', async () => {
    const noImage = await runCli(['deploy', '--runner', 'compose']);
    expect(noImage.code).toBe(2);
    expect(noImage.stderr).toBe(
      'togather: --image is required with --runner compose (e.g. togather:1.4.0)\n',
    );

    const notBuild = await runCli(['deploy', '--runner', 'local', '--build', dir.path]);
    expect(notBuild.code).toBe(2);
    expect(notBuild.stderr).toBe(
      `togather: --build ${dir.path}: ${join(dir.path, 'cli', 'togather.js')} not found (give a built dist/ tree)\n`,
    );

    const retries = await runCli(['deploy', '--runner', 'local', '--health-retries', 'many']);
    expect(retries.code).toBe(2);
    expect(retries.stderr).toBe(
      'togather: --health-retries: "many" is not a whole number from 1 to 10000\n',
    );

    const ratio = await runCli(['deploy', '--runner', 'local', '--max-error-ratio', '2']);
    expect(ratio.code).toBe(2);
    expect(ratio.stderr).toBe('togather: --max-error-ratio: "2" is not a ratio from 0 to 1\n');
  });

  it('--dry-run prints the plan, warns about a file others can read, and changes nothing', async () => {
    const path = writeEnvFile(join(dir.path, 'readable.env'), goodEnv(), 0o644);
    const build = makeFakeBuild(dir.path, '3.0.0', 'unhealthy');
    const r = await runCli([...localDeployArgs(path, build), '--dry-run']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`dry run: deploy 3.0.0 (${build}) with the local runner\n`);
    expect(r.stdout).toContain(
      `warning: ${path} is readable by other users (mode 644); chmod 600 it`,
    );
    for (const step of DEPLOY_STEPS) {
      expect(r.stdout).toMatch(new RegExp(`^ ?\\d+\\. ${step} `, 'm'));
    }

    const json = await runCli([...localDeployArgs(path, build), '--dry-run', '--json']);
    expect(json.code).toBe(0);
    const plan = JSON.parse(json.stdout) as {
      dry_run: boolean;
      version: string;
      plan: { step: string }[];
    };
    expect(plan.dry_run).toBe(true);
    expect(plan.version).toBe('3.0.0');
    expect(plan.plan).toHaveLength(10);
  });

  it('--dry-run names the slot the deploy would start: the idle one the proxy reports, with what runs there', async () => {
    const stateDir = join(dir.path, 'state-plan');
    const { mkdirSync, writeFileSync } = await import('node:fs');
    mkdirSync(stateDir, { recursive: true });
    const known = (pid: number, version: string, port: number) => ({
      pid,
      port,
      build: '/old',
      version,
      started_at: '2030-01-01T00:00:00.000Z',
      log: null,
      started_by: 'deploy',
    });
    writeFileSync(
      join(stateDir, 'slots.json'),
      JSON.stringify({ blue: known(111111, '1.1.0', 8081), green: known(222222, '1.0.0', 8082) }),
    );
    const path = writeEnvFile(join(dir.path, 'plan.env'), goodEnv({ DEPLOY_STATE_DIR: stateDir }));
    const build = makeFakeBuild(dir.path, '3.1.0', 'healthy');
    const flags = [...localDeployArgs(path, build), '--dry-run'];
    const r = await runCli(flags);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // The stand-in proxy says blue is active: the target is green.
    expect(r.stdout).toContain(
      ` 3. active    GET ${adminUrl}/admin/status: blue is active (epoch 0); the target is green\n`,
    );
    expect(r.stdout).toContain(
      ` 6. start     stop green pid 222222 (1.0.0), then SLOT=green SERVER_PORT=8082 node ${build}/cli/togather.js serve\n`,
    );
    expect(r.stdout).toContain(
      ` 8. switch    POST ${adminUrl}/admin/switch?slot=green (health-gated, expect_epoch; 429 and 503 retried for 30s)\n`,
    );
    expect(r.stdout).not.toContain('blue pid');
    const json = JSON.parse((await runCli([...flags, '--json'])).stdout) as Record<string, unknown>;
    expect(json).toMatchObject({ active: 'blue', target: 'green', warnings: [] });

    // The proxy unreachable: the plan says the target is unknown, and why.
    const unreachable = writeEnvFile(
      join(dir.path, 'plan-unreachable.env'),
      goodEnv({ DEPLOY_STATE_DIR: stateDir, ADMIN_URL: `http://127.0.0.1:${await closedPort()}` }),
    );
    const blind = await runCli([...flags.slice(0, 4), unreachable, ...flags.slice(5)]);
    expect(blind.code).toBe(0);
    expect(blind.stdout).toMatch(
      /^warning: the proxy's admin API at http:\/\/127\.0\.0\.1:\d+ did not tell the active slot \(cannot reach the admin API at .*ECONNREFUSED.*\): the deploy would stop at the active step$/m,
    );
    expect(blind.stdout).toMatch(
      /^ 3\. active {4}GET .*: unknown now; the idle slot is the target$/m,
    );
    expect(blind.stdout).toContain(
      ' 6. start     on the idle slot: blue: stop blue pid 111111 (1.1.0), then SLOT=blue SERVER_PORT=8081',
    );
    expect(blind.stdout).toContain('; green: stop green pid 222222 (1.0.0), then SLOT=green');
  });

  it('every bad flag is reported at once, durations worded as everywhere else, exit 2', async () => {
    const r = await runCli([
      'deploy',
      '--runner',
      'local',
      '--build',
      join(dir.path, 'no-build'),
      '--image',
      'togather:1.0.0',
      '--health-retries',
      '0',
      '--health-interval',
      'soon',
      '--verify-seconds',
      'ten',
      '--max-error-ratio',
      '-1',
      '--lock-ttl',
      '100ms',
      '--switch-retry-time',
      '99999999999999999999',
    ]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      'togather: 8 bad flags:\n' +
        '  - --health-retries: "0" is not a whole number from 1 to 10000\n' +
        '  - --health-interval: "soon" is not a duration (use 500ms, 30s, 2m or plain milliseconds)\n' +
        '  - --verify-seconds: "ten" is not a number of seconds\n' +
        '  - --max-error-ratio: "-1" is not a ratio from 0 to 1\n' +
        '  - --lock-ttl: "100ms" is too short (at least 1000 ms)\n' +
        '  - --switch-retry-time: "99999999999999999999" is too long a duration (at most 2147483647 ms, about 24.8 days)\n' +
        '  - --image is for --runner compose; the local runner takes --build DIR\n' +
        `  - --build ${join(dir.path, 'no-build')}: ${join(dir.path, 'no-build', 'cli', 'togather.js')} not found (give a built dist/ tree)\n`,
    );
    const compose = await runCli(['deploy', '--build', 'dist', '--verify-seconds', '1e10']);
    expect(compose.code).toBe(2);
    expect(compose.stderr).toBe(
      'togather: 3 bad flags:\n' +
        '  - --verify-seconds: "1e10" is too long (at most 2147483647 ms, about 24.8 days)\n' +
        '  - --build is for --runner local; the compose runner takes --image\n' +
        '  - --image is required with --runner compose (e.g. togather:1.4.0)\n',
    );
  });

  it('the compose runner plans the docker compose call for the idle slot only', async () => {
    const composeDir = join(dir.path, 'compose');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(composeDir, { recursive: true });
    const path = writeEnvFile(join(composeDir, '.env'), {
      ...goodEnv(),
      DATABASE_URL: '',
      POSTGRES_PASSWORD: secret(24),
    });
    const r = await runCli(['deploy', '--env', path, '--image', 'togather:1.4.0', '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('dry run: deploy 1.4.0 (togather:1.4.0) with the compose runner');
    expect(r.stdout).toContain(
      `TOGATHER_GREEN_IMAGE=togather:1.4.0 docker compose -f ${composeDir}/docker-compose.yml -f ${composeDir}/docker-compose.blue-green.yml --env-file ${path} up -d --no-deps --force-recreate togather-green`,
    );
    const latest = await runCli(['deploy', '--env', path, '--image', 'togather:latest']);
    expect(latest.code).toBe(2);
    expect(latest.stderr).toBe(
      'togather: --version is required: the tag of togather:latest does not name one\n',
    );
  });

  it('deploy status and history with nothing recorded', async () => {
    const path = writeEnvFile(join(dir.path, 'empty-state.env'), {
      DEPLOY_STATE_DIR: join(dir.path, 'empty-state'),
    });
    const status = await runCli(['deploy', 'status', '--env', path]);
    expect(status.code).toBe(0);
    expect(status.stdout).toBe(
      `no deployments recorded in ${join(dir.path, 'empty-state', 'deployments.json')}\ndeploy lock: free\n`,
    );
    const history = await runCli(['deploy', 'history', '--env', path, '--json']);
    expect(history.code).toBe(0);
    expect(JSON.parse(history.stdout)).toEqual({ deployments: [] });
    const bad = await runCli(['deploy', 'history', '--env', path, '--limit', '0']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('togather: --limit: "0" is not a whole number from 1 to 200\n');
  });
});

describe('togather deploy: interrupted', () => {
  it('SIGINT stops a deploy before the switch: exit 1, reason recorded, lock released', async () => {
    const [bluePort, greenPort] = await freePorts(2);
    const stateDir = join(dir.path, 'state-sigint');
    const path = writeEnvFile(join(dir.path, 'sigint.env'), {
      ...goodEnv(),
      BLUE_PORT: String(bluePort),
      GREEN_PORT: String(greenPort),
      DEPLOY_STATE_DIR: stateDir,
    });
    const build = makeFakeBuild(dir.path, '6.0.0', 'unhealthy');
    const deploy = startCli([
      ...localDeployArgs(path, build),
      '--skip-snapshot',
      '--skip-migrations',
      '--health-retries',
      '10000',
      '--health-interval',
      '100ms',
    ]);
    try {
      await deploy.waitFor(/^start\s+ok\s/m, 20_000);
      const exit = await deploy.stop('SIGINT', 20_000);
      expect(exit).toEqual({ code: 1, signal: null });
      expect(deploy.stderr).toContain(
        'warning: SIGINT: stopping the deploy (rolling back if traffic moved)',
      );
      expect(deploy.stderr).toMatch(
        /togather: deploy of 6\.0\.0 failed: health: interrupted by a signal\n$/,
      );
      // The failed build is not left on the idle slot, which ran nothing before.
      const started = /^start\s+ok\s.*pid (\d+) on /m.exec(deploy.stdout)![1]!;
      expect(deploy.stdout).toMatch(
        new RegExp(
          `^restore\\s+ok\\s.*green is stopped: the new pid ${started} stopped; nothing served there before$`,
          'm',
        ),
      );
      expect(processAlive(Number(started))).toBe(false);
      const status = await runCli(['deploy', 'status', '--env', path, '--json']);
      const parsed = JSON.parse(status.stdout) as {
        latest: { result: string; reason: string };
        lock: unknown;
      };
      expect(parsed.lock).toBeNull();
      expect(parsed.latest).toMatchObject({
        result: 'failed',
        reason: 'health: interrupted by a signal',
      });
      expect(switches).toEqual([]);
    } finally {
      await deploy.stop('SIGKILL');
      killSlotProcesses(stateDir);
    }
  });
});

describe('togather deploy: the lock between deploys', () => {
  it('a second concurrent deploy is refused; the lock of a killed deploy expires', async () => {
    const [bluePort, greenPort] = await freePorts(2);
    const stateDir = join(dir.path, 'state-redis');
    const path = writeEnvFile(join(dir.path, 'redis.env'), {
      ...goodEnv(),
      REDIS_URL: redis.url,
      BLUE_PORT: String(bluePort),
      GREEN_PORT: String(greenPort),
      DEPLOY_STATE_DIR: stateDir,
    });
    const build = makeFakeBuild(dir.path, '5.0.0', 'unhealthy');
    const common = [...localDeployArgs(path, build), '--skip-snapshot', '--skip-migrations'];

    // A deploy that waits for a slot that never becomes healthy: it holds the lock.
    const first = startCli([
      ...common,
      '--health-retries',
      '10000',
      '--health-interval',
      '100ms',
      '--lock-ttl',
      '2s',
    ]);
    try {
      await first.waitFor(/^lock\s+ok\s/m, 20_000);

      const second = await runCli([...common, '--health-retries', '1', '--json']);
      expect(second.code).toBe(1);
      // --json: the record alone on stdout
      const refused = JSON.parse(second.stdout) as {
        result: string;
        steps: { name: string; status: string }[];
      };
      expect(refused.result).toBe('failed');
      expect(refused.steps.map((s) => [s.name, s.status])).toEqual([
        ['validate', 'ok'],
        ['lock', 'failed'],
      ]);
      expect(second.stderr).toMatch(
        new RegExp(
          `^togather: deploy of 5\\.0\\.0 failed: lock: another deploy holds the lock: \\S+@\\S+ pid ${first.pid} since \\S+ \\(deploy 5\\.0\\.0\\); it expires in \\d+ s unless renewed\\n$`,
        ),
      );
      // still held: the first deploy renews it past its 2 s time to live
      await new Promise((r) => setTimeout(r, 2_500));
      const status = await runCli(['deploy', 'status', '--env', path, '--json']);
      expect(JSON.parse(status.stdout).lock).toMatchObject({
        pid: first.pid,
        purpose: 'deploy 5.0.0',
      });
    } finally {
      await first.stop('SIGKILL');
    }

    // Killed: nobody renews the lock any more; it expires within its time to live.
    await expect
      .poll(
        async () => {
          const status = await runCli(['deploy', 'status', '--env', path, '--json']);
          return (JSON.parse(status.stdout) as { lock: unknown }).lock;
        },
        { timeout: 10_000, interval: 200 },
      )
      .toBeNull();

    // The next deploy gets the lock (and fails on the unhealthy build, releasing it).
    const third = await runCli([
      ...common,
      '--health-retries',
      '100',
      '--health-interval',
      '100ms',
    ]);
    expect(third.code).toBe(1);
    expect(third.stdout).toMatch(/^lock\s+ok\s/m);
    expect(third.stderr).toMatch(
      /^togather: deploy of 5\.0\.0 failed: health: green not healthy after 100 checks: \/health 503 unhealthy, database: fail \(test build: broken\)\n$/,
    );
    expect(switches).toEqual([]);
    const after = await runCli(['deploy', 'status', '--env', path, '--json']);
    expect(JSON.parse(after.stdout).lock).toBeNull();
  });
});
