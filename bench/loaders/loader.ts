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
  /** Request headers to add (wrk only: the TLS and compression scenarios). */
  headers?: Readonly<Record<string, string>>;
}

export interface LoadFigures {
  /** h2load is no choice of `--loader`: the TLS scenario uses it for HTTP/2 alone. */
  loader: LoaderName | 'h2load';
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
  /** Bytes received, head and body (wrk and h2load report it). */
  bytes?: number;
}

export interface LoadGenerator {
  name: LoaderName | 'h2load';
  /** Seconds the loader really runs for a requested duration (wrk takes whole seconds). */
  effectiveSeconds(durationSeconds: number): number;
  run(run: LoadRun): Promise<LoadFigures>;
}
