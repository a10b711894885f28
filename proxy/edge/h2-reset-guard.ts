import { constants, type Http2Session } from 'node:http2';
import type { Logger } from 'pino';

export interface StreamResetGuardOptions {
  /** Streams a connection may abandon at once (the bucket's size). */
  burst: number;
  /** Abandoned streams forgiven per second after that. */
  perSecond: number;
  logger: Logger;
  /** How long a connection past its budget keeps its other streams before it is cut. */
  graceMs?: number;
  now?: () => number;
}

interface Budget {
  tokens: number;
  at: number;
  exceeded: boolean;
}

/**
 * The bound on HTTP/2 "rapid reset" (CVE-2023-44487): every stream a client
 * opens and abandons before its answer is complete costs the proxy a slot
 * request started for nothing, and a client can open and reset thousands per
 * second without ever hitting the concurrent-stream limit. Each connection
 * has a token bucket of abandoned streams (`burst`, refilled at `perSecond`);
 * the stream that empties it gets the connection a GOAWAY with
 * ENHANCE_YOUR_CALM (no new streams are processed after it), and the
 * connection is closed once its other streams end, or cut after `graceMs`.
 * nghttp2's own limit on RST_STREAM frames (Node's streamResetBurst/Rate,
 * 1000 and 33/s) stays behind it; this one also counts streams the client
 * cancels a little later, after their request reached the slot.
 */
export class StreamResetGuard {
  private readonly budgets = new WeakMap<Http2Session, Budget>();
  private readonly now: () => number;

  constructor(private readonly options: StreamResetGuardOptions) {
    this.now = options.now ?? Date.now;
  }

  /** A stream of `session` ended before its answer did, by the client's doing. */
  noteAbandoned(session: Http2Session | undefined): void {
    if (session === undefined || session.destroyed) return;
    const now = this.now();
    const { burst, perSecond } = this.options;
    let budget = this.budgets.get(session);
    if (budget === undefined) {
      budget = { tokens: burst, at: now, exceeded: false };
      this.budgets.set(session, budget);
    } else {
      budget.tokens = Math.min(burst, budget.tokens + ((now - budget.at) / 1000) * perSecond);
      budget.at = now;
    }
    budget.tokens -= 1;
    if (budget.tokens >= 0 || budget.exceeded) return;
    budget.exceeded = true;
    const socket = session.socket as { remoteAddress?: string } | undefined;
    this.options.logger.warn(
      { remote_addr: socket?.remoteAddress, burst, per_second: perSecond },
      'HTTP/2 client abandons streams faster than allowed (rapid reset): GOAWAY',
    );
    session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM);
    session.close();
    const timer = setTimeout(() => {
      if (!session.destroyed) session.destroy();
    }, this.options.graceMs ?? 1000);
    timer.unref();
  }
}
