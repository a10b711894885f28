/**
 * Failed admin logins per client in a sliding window: after `maxFailures`
 * failures within `windowMs`, the client is refused until the oldest of them
 * leaves the window. Memory is bounded by `maxClients` (oldest forgotten).
 */
export interface LoginLimiterOptions {
  maxFailures?: number;
  windowMs?: number;
  maxClients?: number;
  now?: () => number;
}

export type LimitDecision = { allowed: true } | { allowed: false; retryAfterSeconds: number };

export class LoginLimiter {
  private readonly failures = new Map<string, number[]>();
  private readonly maxFailures: number;
  private readonly windowMs: number;
  private readonly maxClients: number;
  private readonly now: () => number;

  constructor(options: LoginLimiterOptions = {}) {
    this.maxFailures = options.maxFailures ?? 5;
    this.windowMs = options.windowMs ?? 15 * 60_000;
    this.maxClients = options.maxClients ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  check(client: string): LimitDecision {
    const recent = this.recent(client);
    if (recent.length < this.maxFailures) return { allowed: true };
    const oldest = recent[recent.length - this.maxFailures]!;
    const waitMs = oldest + this.windowMs - this.now();
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
  }

  recordFailure(client: string): void {
    const recent = this.recent(client);
    recent.push(this.now());
    // Re-inserting moves the client to the end: the map's order is least recently failed first.
    this.failures.delete(client);
    this.failures.set(client, recent.slice(-this.maxFailures));
    while (this.failures.size > this.maxClients) {
      const first = this.failures.keys().next().value;
      if (first === undefined) break;
      this.failures.delete(first);
    }
  }

  recordSuccess(client: string): void {
    this.failures.delete(client);
  }

  private recent(client: string): number[] {
    const cutoff = this.now() - this.windowMs;
    const kept = (this.failures.get(client) ?? []).filter((t) => t > cutoff);
    if (kept.length === 0) this.failures.delete(client);
    return kept;
  }
}
