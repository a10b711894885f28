/**
 * One measured load run against a target, with the CPU time the target's
 * processes (and the shared upstream) spent on it and their memory at the end.
 */
import type { LoadFigures, LoadGenerator } from './loaders/loader.js';
import { CpuMeter, processTree, rssBytes } from './proc.js';
import { alternate } from './rounds.js';
import type { BenchOptions } from './scenario.js';
import { median } from './stats.js';

export interface Target {
  name: string;
  /** Base URL, without path. */
  url: string;
  /** The processes whose CPU and memory count as this system's (none for direct). */
  pids?: () => number[];
}

/** A load run's figures (LoadFigures, less its length) with the system's CPU and memory. */
export interface RunFigures extends Omit<LoadFigures, 'loader' | 'elapsedMs'> {
  /** The load generator; '–' in a median of no rounds. */
  loader: string;
  /** CPU seconds (user + system, from /proc) of the system's processes per 10,000 responses. */
  cpuPer10k: number;
  /** CPU seconds of the upstream per 10,000 responses. */
  upstreamCpuPer10k: number;
  /** Resident memory of the system's processes when the run ended, bytes. */
  rssBytes: number;
}

export async function measureRun(
  target: Target,
  path: string,
  connections: number,
  durationSeconds: number,
  upstreamPid: number,
  loader: LoadGenerator,
): Promise<RunFigures> {
  const systemCpu = target.pids ? new CpuMeter(target.pids) : undefined;
  const upstreamCpu = new CpuMeter(() => processTree(upstreamPid));
  const result = await loader.run({ url: `${target.url}${path}`, connections, durationSeconds });
  const systemSeconds = systemCpu?.elapsedCpuSeconds();
  const upstreamSeconds = upstreamCpu.elapsedCpuSeconds();
  const per10k = (seconds: number | undefined) =>
    seconds === undefined || result.responses === 0
      ? Number.NaN
      : (seconds / result.responses) * 10_000;
  const { elapsedMs: _elapsed, ...load } = result;
  return {
    ...load,
    cpuPer10k: per10k(systemSeconds),
    upstreamCpuPer10k: per10k(upstreamSeconds),
    rssBytes: target.pids ? rssBytes(target.pids()) : Number.NaN,
  };
}

/** True when a run had socket errors or non-2xx answers: its figures are not comparable. */
export function flagged(figures: Pick<RunFigures, 'errors' | 'non2xx'>): boolean {
  return figures.errors > 0 || figures.non2xx > 0;
}

type MedianKey = Exclude<keyof RunFigures, 'loader' | 'errors' | 'errorKinds' | 'non2xx' | 'bytes'>;

/** The median of every figure over rounds (errors are summed: any error matters). */
export function medianFigures(rounds: RunFigures[]): RunFigures {
  const pick = (key: MedianKey) => median(rounds.map((r) => r[key]));
  const sum = (key: 'errors' | 'non2xx') => rounds.reduce((total, r) => total + r[key], 0);
  const errorKinds: Record<string, number> = {};
  for (const round of rounds)
    for (const [kind, n] of Object.entries(round.errorKinds))
      errorKinds[kind] = (errorKinds[kind] ?? 0) + n;
  return {
    loader: rounds[0]?.loader ?? '–',
    requestsPerSecond: pick('requestsPerSecond'),
    responses: pick('responses'),
    p50: pick('p50'),
    p99: pick('p99'),
    p999: pick('p999'),
    max: pick('max'),
    errors: sum('errors'),
    errorKinds,
    non2xx: sum('non2xx'),
    cpuPer10k: pick('cpuPer10k'),
    upstreamCpuPer10k: pick('upstreamCpuPer10k'),
    loadgenCpuPercent: pick('loadgenCpuPercent'),
    rssBytes: pick('rssBytes'),
    bytes: median(rounds.map((r) => r.bytes ?? Number.NaN)),
  };
}

/** Warm-up length: enough for the JIT and connection pools, at most 2 s, at least 1 s (autocannon's tick, wrk's unit). */
export function warmupSeconds(durationSeconds: number): number {
  return Math.max(1, Math.min(2, Math.round(durationSeconds / 2)));
}

/** A system as a comparison measures it: where it listens and the load that drives it. */
export interface MeasuredSystem {
  target: Target;
  loader: LoadGenerator;
}

export interface Comparison {
  /** Measured in this order every round, keyed by target name. */
  systems: readonly MeasuredSystem[];
  path: string;
  connections: number;
  /** Length of each measured run (the loader's effective seconds). */
  seconds: number;
  /** --rounds, and --duration, from which the warm-up is derived. */
  options: Pick<BenchOptions, 'durationSeconds' | 'rounds'>;
  upstreamPid: number;
  /** After each measured run: the progress line. */
  onRun(name: string, round: number, figures: RunFigures): void;
}

/**
 * Warms every system up once, then measures them in alternating rounds
 * (bench/rounds.ts): the figures of each system by target name.
 */
export async function compareSystems(comparison: Comparison): Promise<Map<string, RunFigures[]>> {
  const { path, connections, upstreamPid } = comparison;
  const warmup = warmupSeconds(comparison.options.durationSeconds);
  for (const { target, loader } of comparison.systems)
    await measureRun(target, path, connections, warmup, upstreamPid, loader);
  const byName = new Map(comparison.systems.map((system) => [system.target.name, system]));
  return alternate([...byName.keys()], comparison.options.rounds, async (name, round) => {
    const { target, loader } = byName.get(name)!;
    const figures = await measureRun(
      target,
      path,
      connections,
      comparison.seconds,
      upstreamPid,
      loader,
    );
    comparison.onRun(name, round, figures);
    return figures;
  });
}
