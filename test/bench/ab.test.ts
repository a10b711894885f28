import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { abTable, parseAbArgs, type AbRun } from '../../bench/ab.js';
import { syscallCount } from '../../bench/proc.js';

/** The A/B script's flags, its summary table and the system-call reading it relies on. */

const AB = fileURLToPath(new URL('../../dist/bench/ab.js', import.meta.url));

describe('bench/ab.ts', () => {
  it('reads both sides, their variables and node flags', () => {
    const options = parseAbArgs([
      '--a',
      '/tmp/x/dist',
      '--b-env',
      'PROXY_WORKERS=2',
      '--b-env',
      'ACCESS_LOG=on',
      '--b-node=--max-semi-space-size=16',
      '--rounds',
      '2',
      '--body',
      '64k',
    ]);
    expect(options.a.dist).toBe('/tmp/x/dist');
    expect(options.b.env).toEqual({ PROXY_WORKERS: '2', ACCESS_LOG: 'on' });
    expect(options.b.nodeArgs).toEqual(['--max-semi-space-size=16']);
    expect(options.rounds).toBe(2);
    expect(options.body).toBe('64k');
    expect(options.framing).toBe('chunked');
  });

  it('refuses a missing A, a bad variable and an unknown body', () => {
    expect(() => parseAbArgs([])).toThrow('build A is missing');
    expect(() => parseAbArgs(['--a', 'x', '--a-env', 'NOVALUE'])).toThrow('NAME=VALUE');
    expect(() => parseAbArgs(['--a', 'x', '--body', '2m'])).toThrow('--body');
    expect(() => parseAbArgs(['--a', 'x', '--a-ref', 'main'])).toThrow('exclude');
    expect(() => parseAbArgs(['--a', 'x', '--rounds', '0'])).toThrow('--rounds');
  });

  it('exits 2 with the usage on a bad flag', () => {
    const result = spawnSync(process.execPath, [AB, '--nope'], { encoding: 'utf8' });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('usage: node dist/bench/ab.js');
  });

  it('summarizes medians and the round-by-round B / A ratio', () => {
    const run = (system: string, round: number, rps: number, cpu: number): AbRun => ({
      system,
      round,
      requestsPerSecond: rps,
      p99: 2,
      cpuPer10k: cpu,
      syscallsPerResponse: 4,
      rssMb: 100,
      errors: 0,
      non2xx: 0,
      otherCores: 0,
    });
    const table = abTable(
      [run('A', 1, 1000, 1), run('B', 1, 2000, 0.5), run('A', 2, 3000, 1), run('B', 2, 3000, 1)],
      ['A', 'B'],
    );
    expect(table).toContain('| A | 2000 (1000–3000) | 2.00 (2.00–2.00) | 1.000 (1.000–1.000)');
    // Round 1: 2.0, round 2: 1.0 → median 1.5.
    expect(table).toContain('| B / A | 1.500 (1.000–2.000) |');
  });

  it('counts this process’s system calls', () => {
    const before = syscallCount([process.pid]);
    spawnSync('true');
    expect(syscallCount([process.pid])).toBeGreaterThan(before);
    expect(syscallCount([2 ** 30])).toBeNaN();
  });
});
