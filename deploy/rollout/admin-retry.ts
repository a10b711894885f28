import { AdminApiError } from '../../proxy/admin/client.js';
import { sleep } from './app-probe.js';
import { formatDuration } from './deploy-output.js';

/**
 * Answers of the admin API that say "not now" rather than "no": 429 (the
 * failed-attempt brake) and 503 (store unavailable, shutting down). A switch
 * refused with one of them did not happen, so asking again is safe; 400, 401,
 * 404 and 409 would only be refused again.
 */
const RETRYABLE = new Set([429, 503]);

export interface RetryPolicy {
  /** Time from the first attempt after which no new attempt starts. */
  totalMs: number;
  /** Wait before the first retry; doubled for each further one, up to maxDelayMs. */
  firstDelayMs: number;
  maxDelayMs: number;
  /** 0 <= x < 1; Math.random in use, fixed in reasoning about the bounds. */
  random: () => number;
}

export const DEFAULT_RETRY_POLICY: Omit<RetryPolicy, 'totalMs'> = {
  firstDelayMs: 250,
  maxDelayMs: 5_000,
  random: Math.random,
};

/** One refused attempt that was retried. */
export interface Refusal {
  status: number;
  code: string;
}

/** The call still failed: the last error, the refusals retried before it, and why it stopped. */
export class RetriesEnded extends Error {
  override name = 'RetriesEnded';
  constructor(
    readonly last: unknown,
    readonly retries: readonly Refusal[],
    readonly why: string | undefined,
  ) {
    super(last instanceof Error ? last.message : String(last));
  }
}

/**
 * Runs `call`, and again while it is refused with 429 or 503: exponential
 * backoff with jitter (each wait between half and all of its doubling step),
 * never sooner than the answer's Retry-After, and no attempt after
 * `policy.totalMs`. `signal` stops the waiting (an interrupted deploy), never
 * an attempt already sent: its answer is what counts.
 */
export async function callWithRetries<T>(
  call: () => Promise<T>,
  policy: RetryPolicy,
  signal?: AbortSignal,
): Promise<{ value: T; retries: readonly Refusal[] }> {
  const started = Date.now();
  const retries: Refusal[] = [];
  for (let attempt = 0; ; attempt++) {
    try {
      return { value: await call(), retries };
    } catch (error) {
      if (!(error instanceof AdminApiError) || !RETRYABLE.has(error.status)) {
        throw new RetriesEnded(error, retries, undefined);
      }
      const elapsed = Date.now() - started;
      const remaining = policy.totalMs - elapsed;
      const step = Math.min(policy.maxDelayMs, policy.firstDelayMs * 2 ** attempt);
      const backoff = step / 2 + policy.random() * (step / 2);
      const retryAfter = error.retryAfterMs ?? 0;
      if (remaining <= 0) {
        throw new RetriesEnded(
          error,
          retries,
          retries.length > 0
            ? `gave up ${retryNote(retries)} in ${formatDuration(elapsed)}`
            : `not retried: the retry time is ${formatDuration(policy.totalMs)}`,
        );
      }
      if (retryAfter > remaining) {
        const before = retries.length > 0 ? ` (${retryNote(retries)})` : '';
        throw new RetriesEnded(
          error,
          retries,
          `not retried: Retry-After ${formatDuration(retryAfter)} is beyond the ${formatDuration(policy.totalMs)} retry time${before}`,
        );
      }
      const wait = Math.min(remaining, Math.max(backoff, retryAfter));
      await sleep(wait, signal);
      if (signal?.aborted) throw new RetriesEnded(signal.reason, retries, undefined);
      retries.push({ status: error.status, code: error.code });
    }
  }
}

/** `after 2 retries (503 store_unavailable)`; empty when there were none. */
export function retryNote(retries: readonly Refusal[]): string {
  if (retries.length === 0) return '';
  const kinds = [...new Set(retries.map((r) => `${r.status} ${r.code}`))];
  const count = retries.length === 1 ? '1 retry' : `${retries.length} retries`;
  return `after ${count} (${kinds.join(', ')})`;
}
