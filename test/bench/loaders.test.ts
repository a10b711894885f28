import { spawnSync } from 'node:child_process';
import type { Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareToBaseline, comparisonTable } from '../../bench/comparison.js';
import { findWrk, parseWrkReport, wrkLoader } from '../../bench/loaders/wrk.js';
import type { RunFigures } from '../../bench/measure.js';
import { stopAll } from '../../bench/processes.js';
import { UPSTREAM_PATHS, createUpstreamServer } from '../../bench/upstream.js';
import { closedPort, freePort } from '../../harness/ports.js';

/**
 * The bench's wrk loader against the real upstream (figures from its Lua
 * report, errors counted and flagged), the headline table's ratios, and the
 * bench CLI's flags (built: npm test builds first).
 */

const RUN = fileURLToPath(new URL('../../dist/bench/run.js', import.meta.url));
const wrk = findWrk();

let upstream: Server;
let upstreamUrl: string;

beforeAll(async () => {
  const port = await freePort();
  upstream = createUpstreamServer('blue');
  await new Promise<void>((resolve) => upstream.listen(port, '127.0.0.1', resolve));
  upstreamUrl = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  upstream.closeAllConnections();
  await new Promise((resolve) => upstream.close(resolve));
  // The peers' and wrk's temp dirs (configs, scripts) and anything still running.
  await stopAll();
});

describe.runIf(wrk.binary !== undefined)('wrk loader', () => {
  it('measures a run from its Lua report', async () => {
    const loader = wrkLoader(wrk.binary!);
    const figures = await loader.run({
      url: `${upstreamUrl}${UPSTREAM_PATHS.small}/chunked`,
      connections: 4,
      durationSeconds: 1,
    });
    expect(figures.loader).toBe('wrk');
    expect(figures.responses).toBeGreaterThan(100);
    expect(figures.errors).toBe(0);
    expect(figures.non2xx).toBe(0);
    expect(figures.elapsedMs).toBeGreaterThan(900);
    expect(figures.requestsPerSecond).toBeCloseTo(
      (figures.responses / figures.elapsedMs) * 1000,
      3,
    );
    expect(figures.p50).toBeGreaterThan(0);
    expect(figures.p99).toBeGreaterThanOrEqual(figures.p50);
    expect(figures.max).toBeGreaterThanOrEqual(figures.p99);
    expect(figures.loadgenCpuPercent).toBeGreaterThan(0);
  });

  it('counts answers of status >= 400 as non-2xx', async () => {
    const figures = await wrkLoader(wrk.binary!).run({
      url: `${upstreamUrl}/no-such-path`,
      connections: 2,
      durationSeconds: 1,
    });
    expect(figures.responses).toBeGreaterThan(0);
    expect(figures.non2xx).toBe(figures.responses);
  });

  it('turns a target that refuses connections into a flagged error, not a crash', async () => {
    const figures = await wrkLoader(wrk.binary!).run({
      url: `http://127.0.0.1:${await closedPort()}/small`,
      connections: 2,
      durationSeconds: 1,
    });
    expect(figures.responses).toBe(0);
    expect(figures.errors).toBe(1);
    expect(Object.keys(figures.errorKinds)).toEqual([
      expect.stringMatching(/^wrk exited with 1: unable to connect to 127\.0\.0\.1:\d+/),
    ]);
  });

  it('rounds a fractional duration up to whole seconds (wrk takes no fractions)', () => {
    const loader = wrkLoader(wrk.binary!);
    expect(loader.effectiveSeconds(0.2)).toBe(1);
    expect(loader.effectiveSeconds(2.5)).toBe(3);
    expect(loader.effectiveSeconds(5)).toBe(5);
  });
});

describe('wrk missing', () => {
  it('is not found at a path that does not exist', () => {
    expect(findWrk('/nonexistent/wrk')).toEqual({ binary: undefined, version: undefined });
  });

  it('makes a run a flagged error, not a crash', async () => {
    const figures = await wrkLoader('/nonexistent/wrk').run({
      url: `${upstreamUrl}${UPSTREAM_PATHS.small}`,
      connections: 2,
      durationSeconds: 1,
    });
    expect(figures.responses).toBe(0);
    expect(figures.errors).toBe(1);
    expect(Object.keys(figures.errorKinds)).toEqual([
      expect.stringMatching(/^wrk did not start: spawn \/nonexistent\/wrk ENOENT/),
    ]);
  });
});

describe('wrk report parsing', () => {
  const good =
    'WRK_REPORT {"requests":10,"duration_us":1000000,"bytes":100,"connect":0,"read":1,"write":0,"status":2,"timeout":0,"p50_us":900,"p99_us":3000,"p999_us":4000,"max_us":5000}';

  it('reads the report line among wrk output', () => {
    expect(parseWrkReport(`Running 1s test\n${good}\n`)).toMatchObject({
      requests: 10,
      read: 1,
      status: 2,
    });
  });

  it.each([
    ['no report line', 'Running 1s test\n'],
    ['broken JSON', 'WRK_REPORT {"requests":'],
    ['a field missing', good.replace('"read":1,', '')],
    ['a field of the wrong type', good.replace('"read":1', '"read":"1"')],
    ['not an object', 'WRK_REPORT 12'],
  ])('rejects %s', (_name, output) => {
    expect(parseWrkReport(output)).toBeUndefined();
  });
});

function figures(requestsPerSecond: number, p99: number, cpuPer10k: number): RunFigures {
  return {
    loader: 'wrk',
    requestsPerSecond,
    responses: requestsPerSecond * 5,
    p50: p99 / 2,
    p99,
    p999: p99,
    max: p99,
    errors: 0,
    errorKinds: {},
    non2xx: 0,
    cpuPer10k,
    upstreamCpuPer10k: 0.1,
    loadgenCpuPercent: 20,
    rssBytes: 10 * 1024 * 1024,
  };
}

describe('comparison with nginx', () => {
  it('takes ratios round by round and reports medians with their range', () => {
    const rounds = new Map([
      ['nginx', [figures(30_000, 3, 0.2), figures(40_000, 4, 0.2), figures(35_000, 3.5, 0.2)]],
      ['proxy', [figures(12_000, 15, 0.8), figures(12_000, 16, 0.9), figures(14_000, 14, 0.7)]],
    ]);
    const [nginx, proxy] = compareToBaseline(rounds, 'nginx');
    expect(nginx!.requestsRatio).toEqual({ median: 1, min: 1, max: 1 });
    expect(proxy!.requestsPerSecond).toEqual({ median: 12_000, min: 12_000, max: 14_000 });
    expect(proxy!.requestsRatio.median).toBeCloseTo(0.4, 6);
    expect(proxy!.requestsRatio.min).toBeCloseTo(0.3, 6);
    expect(proxy!.requestsRatio.max).toBeCloseTo(0.4, 6);
    expect(proxy!.p99Ratio.median).toBeCloseTo(4, 6);
    expect(proxy!.cpuRatio.median).toBeCloseTo(4, 6);
    const table = comparisonTable([nginx!, proxy!], 'nginx');
    expect(table.split('\n')[0]).toMatch(
      /^\| system +\| req\/s +\| × nginx +\| p99 ms +\| × nginx +\| CPU s\/10k +\| × nginx +\| RSS MB +\| errors +\|$/,
    );
    expect(table).toContain('| proxy  | 12,000 (12,000–14,000) | 0.40 (0.30–0.40) |');
  });

  it('flags a system with errors and leaves ratios out without nginx', () => {
    const bad = { ...figures(1000, 5, 1), errors: 3, errorKinds: { read: 3 }, non2xx: 2 };
    const [row] = compareToBaseline(new Map([['caddy', [bad]]]), 'nginx');
    const line = comparisonTable([row!], 'nginx').split('\n')[2]!;
    expect(line).toMatch(
      /^\| caddy ⚠ \| 1,000 +\| – +\| 5\.00 +\| – +\| 1\.00 +\| – +\| 10 +\| 5 ⚠ \(read 3, non-2xx 2\) \|$/,
    );
  });
});

describe('bench CLI flags', () => {
  const bench = (...args: string[]) =>
    spawnSync(process.execPath, [RUN, ...args], { encoding: 'utf8', timeout: 20_000 });

  it('lists its options on --help and exits 0', () => {
    const result = bench('--help');
    expect(result.status).toBe(0);
    for (const flag of [
      '--loader <name>',
      '--peers <list>',
      '--peer-binary',
      '--bodies',
      '--framing',
    ])
      expect(result.stdout).toContain(flag);
    // commander wraps the help to the terminal's width.
    expect(result.stdout.replace(/\s+/g, ' ')).toContain(
      '(choices: "wrk", "autocannon", default: "wrk")',
    );
  });

  it.each([
    [['--bogus'], "error: unknown option '--bogus'"],
    [['--loader', 'ab'], "error: option '--loader <name>' argument 'ab' is invalid"],
    [['--peers', 'nginx,squid'], 'unknown peer "squid" (known: nginx, haproxy, caddy)'],
    [['--bodies', '2m'], 'unknown body "2m" (known: small, 64k, 1m)'],
    [['--framing', 'gzip'], 'unknown framing "gzip" (known: chunked, length)'],
    [['--peer-binary', 'haproxy'], 'expected <peer>=<path> with peer one of nginx, haproxy, caddy'],
    [['--peer-binary', 'squid=/usr/sbin/squid'], 'expected <peer>=<path>'],
    [['--duration', '0'], 'must be above 0'],
  ])('refuses %j with exit 2 and the usage', (args, message) => {
    const result = bench(...args);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(message);
    expect(result.stderr).toContain('Usage: bench [options]');
  });
});
