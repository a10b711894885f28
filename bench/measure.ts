/**
 * One measured load run against a target, with the CPU time the target's
 * processes (and the shared upstream) spent on it.
 */
import { runLoad } from './load.js';
import { CpuMeter } from './proc.js';
import { median, summarizeLatency } from './stats.js';

export interface Target {
  name: string;
  /** Base URL, without path. */
  url: string;
  /** Root of the process tree whose CPU counts as this system's (none for direct). */
  rootPid?: number;
}

export interface RunFigures {
  requestsPerSecond: number;
  responses: number;
  p50: number;
  p99: number;
  p999: number;
  errors: number;
  non2xx: number;
  /** CPU seconds of the system's processes per 10,000 responses. */
  cpuPer10k: number;
  /** CPU seconds of the upstream per 10,000 responses. */
  upstreamCpuPer10k: number;
  loadgenCpuPercent: number;
}

export async function measureRun(
  target: Target,
  path: string,
  connections: number,
  durationSeconds: number,
  upstreamPid: number,
): Promise<RunFigures> {
  const systemCpu = target.rootPid !== undefined ? new CpuMeter(target.rootPid) : undefined;
  const upstreamCpu = new CpuMeter(upstreamPid);
  const result = await runLoad({ url: `${target.url}${path}`, connections, durationSeconds });
  const per10k = (seconds: number) => (seconds / Math.max(1, result.responses)) * 10_000;
  const latency = summarizeLatency(result.log.okLatencies());
  return {
    requestsPerSecond: result.requestsPerSecond,
    responses: result.responses,
    p50: latency.p50,
    p99: latency.p99,
    p999: latency.p999,
    errors: result.errors,
    non2xx: result.non2xx,
    cpuPer10k: systemCpu ? per10k(systemCpu.elapsedCpuSeconds()) : Number.NaN,
    upstreamCpuPer10k: per10k(upstreamCpu.elapsedCpuSeconds()),
    loadgenCpuPercent: result.loadgenCpuPercent,
  };
}

/** The median of every figure over rounds (errors are summed: any error matters). */
export function medianFigures(rounds: RunFigures[]): RunFigures {
  const pick = (key: keyof RunFigures) => median(rounds.map((r) => r[key]));
  const sum = (key: 'errors' | 'non2xx') => rounds.reduce((total, r) => total + r[key], 0);
  return {
    requestsPerSecond: pick('requestsPerSecond'),
    responses: pick('responses'),
    p50: pick('p50'),
    p99: pick('p99'),
    p999: pick('p999'),
    errors: sum('errors'),
    non2xx: sum('non2xx'),
    cpuPer10k: pick('cpuPer10k'),
    upstreamCpuPer10k: pick('upstreamCpuPer10k'),
    loadgenCpuPercent: pick('loadgenCpuPercent'),
  };
}

/** Warm-up length: enough for the JIT and connection pools, at most 2 s, at least 1 s (autocannon's tick). */
export function warmupSeconds(durationSeconds: number): number {
  return Math.max(1, Math.min(2, Math.round(durationSeconds / 2)));
}
