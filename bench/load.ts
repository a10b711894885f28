/**
 * One load run with autocannon (programmatic, in this process), plus a
 * per-response log taken from autocannon's own client events: latency at
 * microsecond resolution (autocannon's histogram keeps whole milliseconds),
 * arrival time, and which slot answered. The log is a few typed-array writes
 * per response, so it does not become the bottleneck.
 */
import autocannon from 'autocannon';
import { performance } from 'node:perf_hooks';
import { UPSTREAM_SLOT_HEADER } from './upstream.js';

export const SLOT_HEADER = 'x-togather-slot';

/** Slot codes in the response log. */
export const SLOT_CODES = ['none', 'blue', 'green', 'other'] as const;
export type SlotName = (typeof SLOT_CODES)[number];

function slotCode(value: string | undefined): number {
  if (value === undefined) return 0;
  if (value === 'blue') return 1;
  if (value === 'green') return 2;
  return 3;
}

/** Column store of responses: grows by doubling, never per response. */
export class ResponseLog {
  length = 0;
  /** ms since the run started. */
  time = new Float64Array(1024);
  /** ms. */
  latency = new Float32Array(1024);
  /** 2xx = 1, anything else 0. */
  ok = new Uint8Array(1024);
  /** X-Togather-Slot (what the proxy says), as a slot code. */
  slot = new Uint8Array(1024);
  /** X-Upstream-Slot (which upstream really answered), as a slot code. */
  served = new Uint8Array(1024);

  push(time: number, latency: number, ok: boolean, slot: number, served: number): void {
    if (this.length === this.time.length) this.grow();
    const i = this.length++;
    this.time[i] = time;
    this.latency[i] = latency;
    this.ok[i] = ok ? 1 : 0;
    this.slot[i] = slot;
    this.served[i] = served;
  }

  private grow(): void {
    const size = this.time.length * 2;
    const grow = <T extends Float64Array | Float32Array | Uint8Array>(old: T, next: T): T => {
      next.set(old);
      return next;
    };
    this.time = grow(this.time, new Float64Array(size));
    this.latency = grow(this.latency, new Float32Array(size));
    this.ok = grow(this.ok, new Uint8Array(size));
    this.slot = grow(this.slot, new Uint8Array(size));
    this.served = grow(this.served, new Uint8Array(size));
  }

  /** Latencies of 2xx responses, for percentiles. */
  okLatencies(from = 0, to = Number.POSITIVE_INFINITY): Float32Array {
    const out = new Float32Array(this.length);
    let n = 0;
    for (let i = 0; i < this.length; i++) {
      const t = this.time[i]!;
      if (this.ok[i] === 1 && t >= from && t < to) out[n++] = this.latency[i]!;
    }
    return out.subarray(0, n);
  }
}

export interface LoadOptions {
  url: string;
  connections: number;
  /** Seconds; ignored when `amount` is set. */
  durationSeconds?: number;
  /** Stop after this many responses instead of after a duration. */
  amount?: number;
  /** Read slot headers of every response (cutover, fleet). */
  readSlots?: boolean;
  /** Called with the response count about every 250 ms (memory sampling, progress). */
  onProgress?: (responses: number) => void;
  /** Safety bound on the whole run, whatever happens to the target. */
  maxSeconds?: number;
}

export interface LoadResult {
  responses: number;
  /** ms from autocannon's start to its last response. */
  elapsedMs: number;
  requestsPerSecond: number;
  errors: number;
  timeouts: number;
  resets: number;
  non2xx: number;
  statusCodes: Record<string, number>;
  /** Responses per X-Togather-Slot value (when readSlots). */
  slots: Partial<Record<SlotName, number>>;
  /** Responses per X-Upstream-Slot value: the upstream that really answered (when readSlots). */
  served: Partial<Record<SlotName, number>>;
  /** Responses whose X-Togather-Slot differs from the upstream that served them. */
  slotMismatches: number;
  /** ms since start of each request error (connection errors, timeouts). */
  errorTimes: number[];
  /** Request errors by kind (error code, or message). */
  errorKinds: Record<string, number>;
  /** CPU of this process (the load generator) during the run, % of one core: near 100 means it was the bottleneck. */
  loadgenCpuPercent: number;
  /** Performance-clock time the run started, to line up with switch times. */
  startedAt: number;
  log: ResponseLog;
}

interface ParserHeaders {
  headers?: unknown;
}

/** Finds two header values in http-parser-js's flat [name, value, …] list. */
function slotHeaders(info: unknown): [number, number] {
  const raw = (info as ParserHeaders | undefined)?.headers;
  let slot = 0;
  let served = 0;
  if (!Array.isArray(raw)) return [slot, served];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    // Length checks first: most headers are rejected without lower-casing.
    if (name.length === SLOT_HEADER.length && name.toLowerCase() === SLOT_HEADER)
      slot = slotCode(raw[i + 1] as string);
    else if (
      name.length === UPSTREAM_SLOT_HEADER.length &&
      name.toLowerCase() === UPSTREAM_SLOT_HEADER
    )
      served = slotCode(raw[i + 1] as string);
  }
  return [slot, served];
}

export function runLoad(options: LoadOptions): Promise<LoadResult> {
  const log = new ResponseLog();
  const errorTimes: number[] = [];
  const errorKinds: Record<string, number> = {};
  const slotCounts = [0, 0, 0, 0];
  const servedCounts = [0, 0, 0, 0];
  let mismatches = 0;
  let startedAt = performance.now();
  let lastResponseAt = startedAt;
  let cpuAtStart = process.cpuUsage();

  const setupClient = (client: autocannon.Client) => {
    let slot = 0;
    let served = 0;
    if (options.readSlots) {
      // 'headers' always precedes the 'response' of the same reply (no pipelining).
      client.on('headers', (info: unknown) => {
        [slot, served] = slotHeaders(info);
      });
    }
    client.on('response', (status: number, _bytes: number, latency: number) => {
      const now = performance.now();
      lastResponseAt = now;
      log.push(now - startedAt, latency, status >= 200 && status < 300, slot, served);
      if (options.readSlots) {
        slotCounts[slot]!++;
        servedCounts[served]!++;
        if (slot !== 0 && served !== 0 && slot !== served) mismatches++;
        slot = 0;
        served = 0;
      }
    });
  };

  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.url,
        connections: options.connections,
        duration: options.durationSeconds ?? 10,
        ...(options.amount !== undefined ? { amount: options.amount } : {}),
        pipelining: 1,
        timeout: 10,
        setupClient,
      },
      (error, result) => {
        clearTimeout(safety);
        clearInterval(progress);
        if (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
          return;
        }
        const elapsedMs = Math.max(1, lastResponseAt - startedAt);
        const cpu = process.cpuUsage(cpuAtStart);
        const loadgenCpuPercent = (cpu.user + cpu.system) / 10 / elapsedMs;
        const statusCodes: Record<string, number> = {};
        for (const [code, stat] of Object.entries(result.statusCodeStats ?? {}))
          statusCodes[code] = stat.count ?? 0;
        const byName = (counts: number[]) => {
          const named: Partial<Record<SlotName, number>> = {};
          if (options.readSlots)
            SLOT_CODES.forEach((name, code) => {
              if (counts[code]! > 0) named[name] = counts[code]!;
            });
          return named;
        };
        resolve({
          responses: log.length,
          elapsedMs,
          requestsPerSecond: (log.length / elapsedMs) * 1000,
          errors: result.errors,
          timeouts: result.timeouts,
          resets: result.resets,
          non2xx: result.non2xx,
          statusCodes,
          slots: byName(slotCounts),
          served: byName(servedCounts),
          slotMismatches: mismatches,
          errorTimes,
          errorKinds,
          loadgenCpuPercent,
          startedAt,
          log,
        });
      },
    );
    instance.on('start', () => {
      startedAt = performance.now();
      lastResponseAt = startedAt;
      cpuAtStart = process.cpuUsage();
    });
    instance.on('reqError', (error: unknown) => {
      errorTimes.push(performance.now() - startedAt);
      const kind =
        (error as { code?: string } | undefined)?.code ??
        (error instanceof Error ? error.message : String(error));
      errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
    });
    const progress = setInterval(() => options.onProgress?.(log.length), 250);
    const maxSeconds =
      options.maxSeconds ??
      (options.amount !== undefined ? 3600 : (options.durationSeconds ?? 10) + 30);
    const safety = setTimeout(() => instance.stop(), maxSeconds * 1000);
  });
}
