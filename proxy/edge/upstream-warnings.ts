import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { ProxyMetrics } from '../metrics.js';
import type { Slot } from '../state/slot-state.js';
import type { UpstreamErrorReason, UpstreamFailure } from './upstream-errors.js';

/** A slot that broke its answer off after the head went out. */
const ANSWER_CUT: UpstreamFailure = { reason: 'reset', status: 502, error: 'upstream_reset' };

/** What an exchange (HTTP/1.1's EdgeRequest, HTTP/2's H2Exchange) records of its slot's failure. */
export interface FailedExchange {
  readonly slot: Slot;
  readonly requestId: string;
  upstreamError: UpstreamErrorReason | null;
}

/** How often upstream failures of one slot reach the log at most (the metric counts all). */
const WARN_INTERVAL_MS = 1000;

/**
 * The log line of a failed upstream request, at most one per slot and
 * second, the next one saying how many were left out: a dead slot under load
 * would otherwise write a line per request. Shared by the HTTP/1.1 and the
 * HTTP/2 forwarders.
 */
export class UpstreamWarnings {
  private readonly lastWarnAt: Record<Slot, number> = { blue: -Infinity, green: -Infinity };
  private readonly suppressed: Record<Slot, number> = { blue: 0, green: 0 };

  constructor(private readonly logger: Logger) {}

  warn(
    slot: Slot,
    requestId: string,
    failure: UpstreamFailure,
    error: Error | undefined,
    http2: boolean,
  ): void {
    const now = performance.now();
    if (now - this.lastWarnAt[slot] < WARN_INTERVAL_MS) {
      this.suppressed[slot]++;
      return;
    }
    this.lastWarnAt[slot] = now;
    const suppressed = this.suppressed[slot];
    this.suppressed[slot] = 0;
    this.logger.warn(
      {
        slot,
        request_id: requestId,
        reason: failure.reason,
        status: failure.status,
        code: (error as NodeJS.ErrnoException | undefined)?.code,
        error: error?.message,
        ...(http2 ? { http2: true } : {}),
        ...(suppressed > 0 ? { suppressed } : {}),
      },
      'upstream request failed',
    );
  }

  /** The slot cut its answer short after the head went out: counted and logged once per exchange. */
  answerCut(exchange: FailedExchange, metrics: ProxyMetrics, http2: boolean): void {
    if (exchange.upstreamError !== null) return;
    exchange.upstreamError = 'reset';
    metrics.countUpstreamError(exchange.slot, 'reset');
    this.warn(exchange.slot, exchange.requestId, ANSWER_CUT, undefined, http2);
  }
}
