import { bearerToken, secretsEqual } from '../../common/secrets.js';
import { ADMIN_ERRORS } from './errors.js';

const { keyMalformed, keyMissing, keyWrong, tooManyAttempts } = ADMIN_ERRORS;

export type AuthVerdict =
  | { ok: true }
  | { ok: false; status: 401; error: 'unauthorized'; message: string; challenge: string }
  | {
      ok: false;
      status: 429;
      error: 'too_many_attempts';
      message: string;
      retryAfterSeconds: number;
    };

export interface AdminAuthOptions {
  apiKey: string;
  /** Wrong keys from one address within `windowMs` before its wrong keys get 429. */
  maxFailures?: number;
  windowMs?: number;
  /** Bounds the memory an address-spraying client can make us use. */
  maxTrackedAddresses?: number;
  now?: () => number;
}

const REALM = 'Bearer realm="togather-admin"';

/**
 * Bearer-key check of the admin API, with a brake on guessing: after
 * `maxFailures` wrong keys from one address within the window, that address
 * gets 429 for anything but the right key until its oldest failure leaves the
 * window.
 *
 * The brake throttles failures only: the key is compared first (constant
 * time, a hash and a compare), and the right key always passes. Otherwise
 * anyone who can reach the admin port could lock out every switch and
 * rollback; behind Docker's port publishing every host client shares one
 * address. A success does not clear the address's failures: on such a
 * shared address that would hand a guesser a fresh budget whenever a
 * legitimate client calls, and the right key needs no clearing to pass.
 *
 * What the brake does not do: stop a guesser that ignores 429, since a
 * throttled address still learns when it hits the right key. The defence
 * against guessing is the key itself (ADMIN_API_KEY has at least 32
 * characters; `openssl rand -hex 32` gives 256 bits). The brake tells
 * scripted guessers and misconfigured clients to back off and makes them
 * visible (api.ts logs a warning per refusal).
 *
 * A request without any Authorization header gets 401 but does not count:
 * it cannot guess the key, and on a loopback listener every local client
 * shares one address, so counting it would only lock operators out.
 */
export class AdminAuth {
  private readonly maxFailures: number;
  private readonly windowMs: number;
  private readonly maxTracked: number;
  private readonly now: () => number;
  /** Failure times per address, oldest first. */
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly options: AdminAuthOptions) {
    this.maxFailures = options.maxFailures ?? 10;
    this.windowMs = options.windowMs ?? 60_000;
    this.maxTracked = options.maxTrackedAddresses ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  check(address: string, authorization: string | undefined): AuthVerdict {
    const token = bearerToken(authorization);
    if (token !== undefined && secretsEqual(token, this.options.apiKey)) return { ok: true };
    const now = this.now();
    const recent = this.recentFailures(address, now);
    if (recent.length >= this.maxFailures) {
      // Not counted: the address stays refused until its oldest counted failure
      // leaves the window, and its record never grows past maxFailures.
      const oldest = recent[recent.length - this.maxFailures]!;
      const retryAfterSeconds = Math.max(1, Math.ceil((oldest + this.windowMs - now) / 1000));
      return {
        ok: false,
        status: tooManyAttempts.statusCode,
        error: tooManyAttempts.code,
        message: tooManyAttempts.message(address, retryAfterSeconds),
        retryAfterSeconds,
      };
    }
    if (authorization === undefined) {
      return {
        ok: false,
        status: keyMissing.statusCode,
        error: keyMissing.code,
        message: keyMissing.message(),
        challenge: REALM,
      };
    }
    this.countFailure(address, recent, now);
    const refusal = token === undefined ? keyMalformed : keyWrong;
    return {
      ok: false,
      status: refusal.statusCode,
      error: refusal.code,
      message: refusal.message(),
      challenge: `${REALM}, error="invalid_token"`,
    };
  }

  private recentFailures(address: string, now: number): number[] {
    const times = this.failures.get(address);
    if (!times) return [];
    const recent = times.filter((t) => now - t < this.windowMs);
    if (recent.length === 0) this.failures.delete(address);
    else this.failures.set(address, recent);
    return recent;
  }

  private countFailure(address: string, recent: number[], now: number): void {
    if (!this.failures.has(address) && this.failures.size >= this.maxTracked) this.prune(now);
    // Still full of fresh failures from other addresses: forget the oldest-tracked one.
    if (!this.failures.has(address) && this.failures.size >= this.maxTracked) {
      const first = this.failures.keys().next();
      if (!first.done) this.failures.delete(first.value);
    }
    this.failures.set(address, [...recent, now]);
  }

  private prune(now: number): void {
    for (const [address, times] of this.failures) {
      if (times.every((t) => now - t >= this.windowMs)) this.failures.delete(address);
    }
  }
}
