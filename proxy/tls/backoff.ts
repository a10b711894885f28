export interface BackoffPolicy {
  /** Delay after the first failure. */
  firstMs: number;
  /** No delay is longer than this, however many failures. */
  maxMs: number;
}

/**
 * Let's Encrypt allows 5 failed validations per name and hour: 2, 4, 8, 16
 * and 32 minutes keep a failing name under it, then once an hour.
 */
export const ACME_RETRY: BackoffPolicy = { firstMs: 2 * 60_000, maxMs: 60 * 60_000 };

/**
 * The delay before retry number `failures` (1 = after the first failure):
 * doubling from firstMs up to maxMs, then jittered down by up to a quarter so
 * a fleet that failed together does not retry together.
 */
export function backoffDelay(
  policy: BackoffPolicy,
  failures: number,
  random: () => number = Math.random,
): number {
  const exponent = Math.min(Math.max(failures, 1) - 1, 30);
  const base = Math.min(policy.maxMs, policy.firstMs * 2 ** exponent);
  return Math.round(base * (1 - 0.25 * random()));
}
