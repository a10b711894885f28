import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFileLock } from '../../deploy/locks/lock-file.js';
import { slotCounts } from '../../deploy/rollout/proxy-metrics.js';
import { verifyAfterSwitch, type VerifyOptions } from '../../deploy/rollout/verify.js';
import { CLI } from '../support/processes.js';
import { freePort } from '../../harness/ports.js';
import {
  deploySecrets,
  tempDir,
  writeEnvFile,
  makeFakeBuild,
  localDeployArgs,
} from '../support/deploy-fixtures.js';

const METRICS = `# HELP togather_proxy_requests_total Requests answered.
# TYPE togather_proxy_requests_total counter
togather_proxy_requests_total{slot="green",method="GET",code="200"} 90
togather_proxy_requests_total{slot="green",method="POST",code="503"} 7
togather_proxy_requests_total{slot="green",method="GET",code="500"} 3
togather_proxy_requests_total{slot="blue",method="GET",code="500"} 1000
togather_proxy_requests_total_created{slot="green",method="GET",code="200"} 1700000000
`;

describe('proxy metrics', () => {
  it('counts one slot\u2019s answers and its 5xx from the Prometheus text', () => {
    expect(slotCounts(METRICS, 'green')).toEqual({ total: 100, errors5xx: 10 });
    expect(slotCounts(METRICS, 'blue')).toEqual({ total: 1000, errors5xx: 1000 });
    expect(slotCounts('', 'blue')).toEqual({ total: 0, errors5xx: 0 });
  });
});

/** A stand-in for the proxy's public listener: answers as `slot` with `version`. */
let server: Server;
let url: string;
let answer = { slot: 'green', version: '2.0.0', healthStatus: 200 };

beforeAll(async () => {
  server = createServer((req, res) => {
    res.setHeader('x-togather-slot', answer.slot);
    res.setHeader('content-type', 'application/json');
    if (req.url === '/health') {
      res.statusCode = answer.healthStatus;
      res.end(JSON.stringify({ status: answer.healthStatus === 200 ? 'healthy' : 'unhealthy' }));
    } else {
      res.end(JSON.stringify({ version: answer.version }));
    }
  });
  const port = await freePort();
  await new Promise<void>((ok) => server.listen(port, '127.0.0.1', ok));
  url = `http://127.0.0.1:${port}`;
});

afterAll(() => server?.close());

function options(extra: Partial<VerifyOptions> = {}): VerifyOptions {
  return {
    proxyUrl: url,
    slot: 'green',
    version: '2.0.0',
    durationMs: 600,
    intervalMs: 100,
    maxErrorRatio: 0.05,
    minRequests: 10,
    maxConsecutiveFailures: 2,
    metrics: async () => '',
    ...extra,
  };
}

describe('verification after the switch', () => {
  it('passes when every probe is answered by the new slot with the new version', async () => {
    answer = { slot: 'green', version: '2.0.0', healthStatus: 200 };
    const result = await verifyAfterSwitch(options());
    expect(result.ok).toBe(true);
  });

  it('fails on answers from the other slot, a wrong version or an unhealthy /health', async () => {
    answer = { slot: 'blue', version: '2.0.0', healthStatus: 200 };
    expect(await verifyAfterSwitch(options())).toEqual({
      ok: false,
      reason: '/health through the proxy was answered by blue, not green',
    });
    answer = { slot: 'green', version: '1.9.0', healthStatus: 200 };
    expect(await verifyAfterSwitch(options())).toEqual({
      ok: false,
      reason: '/version through the proxy reports 1.9.0, not 2.0.0',
    });
    answer = { slot: 'green', version: '2.0.0', healthStatus: 503 };
    expect(await verifyAfterSwitch(options())).toEqual({
      ok: false,
      reason: '/health through the proxy answered 503 unhealthy',
    });
  });

  it('fails when the share of 5xx the proxy counted for the new slot passes the threshold', async () => {
    answer = { slot: 'green', version: '2.0.0', healthStatus: 200 };
    let reads = 0;
    const result = await verifyAfterSwitch(
      options({
        // the first reading is the baseline; later ones add 10 answers, 2 of them 5xx
        metrics: async () =>
          reads++ === 0
            ? ''
            : 'togather_proxy_requests_total{slot="green",method="GET",code="200"} 8\n' +
              'togather_proxy_requests_total{slot="green",method="GET",code="502"} 2\n',
      }),
    );
    expect(result).toEqual({
      ok: false,
      reason: '2 of 10 answers from green were 5xx (20.0% > 5.0%)',
    });
  });
});

describe('output on a terminal', () => {
  const dir = tempDir('tty');
  afterAll(() => dir.cleanup());

  it('draws a live step list (here: validate passed, the lock refused)', async () => {
    const stateDir = join(dir.path, 'state');
    const lock = createFileLock({ path: join(stateDir, 'deploy.lock'), ttlMs: 60_000 });
    const held = await lock.acquire('deploy 0.0.1');
    try {
      const envFile = writeEnvFile(join(dir.path, 'tty.env'), {
        DATABASE_URL: 'postgres://x@127.0.0.1:1/x',
        ...deploySecrets(),
        DEPLOY_STATE_DIR: stateDir,
      });
      const build = makeFakeBuild(dir.path, '4.0.0', 'unhealthy');
      const command = [process.execPath, CLI, ...localDeployArgs(envFile, build)]
        .map((a) => `'${a}'`)
        .join(' ');
      // `script` gives the deploy a pseudo-terminal, as an operator's shell would.
      const result = await promisify(execFile)(
        'script',
        ['-qec', `${command}; echo "exit=$?"`, '/dev/null'],
        {
          env: { PATH: process.env.PATH, HOME: process.env.HOME, TERM: 'xterm' },
        },
      ).catch((error: { stdout: string }) => error);
      const out = result.stdout;
      expect(out).toContain('\x1b[2K'); // lines redrawn in place
      expect(out).toMatch(/✔ validate\s+\d+ ms {2}/);
      expect(out).toMatch(/✖ lock\s+\d+ ms {2}another deploy holds the lock: \S+ pid \d+ since/);
      expect(out).toContain('deploy of 4.0.0 failed: lock: another deploy holds the lock');
      expect(out).toContain('exit=1');
    } finally {
      await held.release();
    }
  });
});
