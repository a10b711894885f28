/**
 * h2load (Debian's nghttp2-client) as the load generator for HTTP/2 over TLS:
 * wrk speaks only HTTP/1.1. One thread (`-t1`), one stream at a time per
 * connection (`-m1`) so a run compares with wrk's keep-alive runs at the same
 * connection count. h2load reports mean latency but no percentiles: p99 and
 * friends are NaN in its figures.
 */
import { performance } from 'node:perf_hooks';
import { findCommand } from '../peers/peer.js';
import { reapedChildrenCpuSeconds } from '../proc.js';
import { startProcess } from '../processes.js';
import type { LoadFigures, LoadRun } from './loader.js';

export const H2LOAD_INSTALL_HINT = 'apt-get install nghttp2-client';

export interface H2loadFigures extends LoadFigures {
  /** Mean time per request, ms (h2load's "time for request" mean). */
  meanMs: number;
}

const UNITS_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000 };

/** The figures in h2load's summary, or undefined when it printed none. */
export function parseH2loadOutput(
  output: string,
): Omit<H2loadFigures, 'loadgenCpuPercent' | 'loader'> | undefined {
  const finished = /finished in ([\d.]+)(m?s), ([\d.]+) req\/s/.exec(output);
  const requests =
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(
      output,
    );
  const status = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(output);
  const traffic = /traffic: [\d.]+[KMG]?B \((\d+)\) total/.exec(output);
  const time = /time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)/.exec(
    output,
  );
  if (!finished || !requests || !status) return undefined;
  const elapsedMs = Number(finished[1]) * (finished[2] === 'ms' ? 1 : 1000);
  const [, , , , succeeded, failed, errored, timeout] = requests.map(Number);
  const non2xx = Number(status[2]) + Number(status[3]) + Number(status[4]);
  const errorKinds: Record<string, number> = {};
  if (failed! - non2xx > 0) errorKinds.failed = failed! - non2xx;
  if (errored! > 0) errorKinds.errored = errored!;
  if (timeout! > 0) errorKinds.timeout = timeout!;
  const errors = Object.values(errorKinds).reduce((a, b) => a + b, 0);
  return {
    responses: succeeded! + non2xx,
    elapsedMs,
    requestsPerSecond: Number(finished[3]),
    p50: Number.NaN,
    p99: Number.NaN,
    p999: Number.NaN,
    max: time ? Number(time[3]) * UNITS_MS[time[4]!]! : Number.NaN,
    meanMs: time ? Number(time[5]) * UNITS_MS[time[6]!]! : Number.NaN,
    errors,
    errorKinds,
    non2xx,
    bytes: traffic ? Number(traffic[1]) : undefined,
  };
}

/** h2load's path, or undefined when it is not installed. */
export function findH2load(binary?: string): string | undefined {
  return findCommand(binary ?? 'h2load');
}

/** One h2load run of `run.durationSeconds` (after a 1 s warm-up on the same connections). */
export async function runH2load(binary: string, run: LoadRun): Promise<H2loadFigures> {
  const seconds = Math.max(1, Math.ceil(run.durationSeconds));
  const args = [
    '-t1',
    `-c${run.connections}`,
    '-m1',
    `-D${seconds}`,
    '--warm-up-time=1',
    ...Object.entries(run.headers ?? {}).flatMap(([name, value]) => ['-H', `${name}: ${value}`]),
    run.url,
  ];
  const cpuBefore = reapedChildrenCpuSeconds();
  const started = performance.now();
  const child = startProcess('h2load', binary, args, {});
  const safety = setTimeout(() => child.child.kill('SIGKILL'), (seconds + 30) * 1000);
  const { code } = await child.exited;
  await child.closed;
  clearTimeout(safety);
  const elapsedMs = performance.now() - started;
  const parsed = code === 0 ? parseH2loadOutput(child.output()) : undefined;
  if (parsed === undefined) {
    const detail = child.output().trim().split('\n').at(-1)?.trim() ?? '';
    return {
      loader: 'h2load',
      responses: 0,
      elapsedMs,
      requestsPerSecond: 0,
      p50: Number.NaN,
      p99: Number.NaN,
      p999: Number.NaN,
      max: Number.NaN,
      meanMs: Number.NaN,
      errors: 1,
      errorKinds: { [`h2load exited ${String(code)}: ${detail}`]: 1 },
      non2xx: 0,
      loadgenCpuPercent: Number.NaN,
    };
  }
  const cpu = reapedChildrenCpuSeconds() - cpuBefore;
  return {
    ...parsed,
    loader: 'h2load',
    loadgenCpuPercent: (cpu * 1000 * 100) / Math.max(1, parsed.elapsedMs),
  };
}
