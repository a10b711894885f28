/**
 * A load generator for the throughput, latency and CPU figures: wrk (an
 * external process, the default) or autocannon (in the bench's own process).
 * Both give the same figures, so a scenario does not care which one ran.
 */

export const LOADER_NAMES = ['wrk', 'autocannon'] as const;
export type LoaderName = (typeof LOADER_NAMES)[number];

export interface LoadRun {
  /** Full URL, with path. */
  url: string;
  connections: number;
  durationSeconds: number;
}

export interface LoadFigures {
  loader: LoaderName;
  responses: number;
  /** ms over which the responses arrived. */
  elapsedMs: number;
  requestsPerSecond: number;
  /** Latency percentiles in ms (wrk: every response; autocannon: 2xx responses). */
  p50: number;
  p99: number;
  p999: number;
  max: number;
  /** Socket errors and timeouts: connect, read, write, timeout, or an error code. */
  errors: number;
  errorKinds: Record<string, number>;
  /** Responses that were not 2xx (wrk counts status ≥ 400: its only status check). */
  non2xx: number;
  /** CPU of the load generator during the run, % of one core: near 100 means it was the limit. */
  loadgenCpuPercent: number;
}

export interface LoadGenerator {
  name: LoaderName;
  /** Seconds the loader really runs for a requested duration (wrk takes whole seconds). */
  effectiveSeconds(durationSeconds: number): number;
  run(run: LoadRun): Promise<LoadFigures>;
}
