/**
 * Whether the app is draining for shutdown, and how many requests are in
 * flight: the shutdown waits for the count to reach zero, /health and
 * /readyz answer 503 as soon as draining starts.
 */
export class Lifecycle {
  private inflightCount = 0;
  private drainingSince: number | undefined;
  private idleWaiters: Array<() => void> = [];

  get draining(): boolean {
    return this.drainingSince !== undefined;
  }

  get inflight(): number {
    return this.inflightCount;
  }

  startDraining(now = Date.now()): void {
    this.drainingSince ??= now;
  }

  requestStarted(): void {
    this.inflightCount++;
  }

  requestFinished(): void {
    this.inflightCount = Math.max(0, this.inflightCount - 1);
    if (this.inflightCount === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  /** Resolves true once nothing is in flight, or false when timeoutMs passes first. */
  whenIdle(timeoutMs: number): Promise<boolean> {
    if (this.inflightCount === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.idleWaiters = this.idleWaiters.filter((w) => w !== wake);
        resolve(false);
      }, timeoutMs);
      this.idleWaiters.push(wake);
    });
  }
}
