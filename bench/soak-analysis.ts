/**
 * Whether a soak's resource readings are flat: the first part of the run is
 * left out (JIT, pools and buffers settle there), and the rest is compared
 * by its first and last quarter (medians, robust to a sample taken during a
 * switch or a GC) and by its least-squares slope.
 */
import { median } from './stats.js';

export interface SoakSample {
  /** s since the load started. */
  seconds: number;
  requests: number;
  unexpectedErrors: number;
  /** Resident set of the proxy's process tree, bytes. */
  rss: number;
  /** V8 heap in use in the proxy's main process (its /metrics), bytes; NaN when unread. */
  heapUsed: number;
  /** Open file descriptors of the proxy's process tree. */
  fds: number;
  websocketsOpened: number;
  storeConnected: boolean | null;
}

export interface Flatness {
  /** Median of the first and last quarter of the settled samples. */
  early: number;
  late: number;
  /** late − early. */
  growth: number;
  /** Least-squares slope over the settled samples, per minute. */
  slopePerMinute: number;
  /** The growth allowed: noise, not a leak. */
  allowed: number;
  flat: boolean;
}

/** Fraction of the run treated as warm-up. */
export const SETTLE_FRACTION = 0.2;

export function settled(samples: SoakSample[]): SoakSample[] {
  const end = samples[samples.length - 1]?.seconds ?? 0;
  return samples.filter((s) => s.seconds >= end * SETTLE_FRACTION);
}

/**
 * `value` is flat when its late median exceeds its early median by no more
 * than `relative` of the early median plus `absolute`.
 */
export function flatness(
  samples: SoakSample[],
  value: (s: SoakSample) => number,
  relative: number,
  absolute: number,
  /** `floor`: the lowest reading of each quarter, for a sawtooth like a GC'd heap, whose floor a leak raises. */
  summary: 'median' | 'floor' = 'median',
): Flatness {
  const kept = settled(samples);
  const quarter = Math.max(1, Math.floor(kept.length / 4));
  const summarize = (values: number[]) =>
    summary === 'median' ? median(values) : Math.min(...values.filter(Number.isFinite));
  const early = summarize(kept.slice(0, quarter).map(value));
  const late = summarize(kept.slice(-quarter).map(value));
  const allowed = early * relative + absolute;
  return {
    early,
    late,
    growth: late - early,
    slopePerMinute: slope(kept, value) * 60,
    allowed,
    flat: late - early <= allowed,
  };
}

function slope(samples: SoakSample[], value: (s: SoakSample) => number): number {
  const n = samples.length;
  if (n < 2) return 0;
  const mx = samples.reduce((a, s) => a + s.seconds, 0) / n;
  const my = samples.reduce((a, s) => a + value(s), 0) / n;
  let num = 0;
  let den = 0;
  for (const s of samples) {
    num += (s.seconds - mx) * (value(s) - my);
    den += (s.seconds - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}
