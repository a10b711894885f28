import type { Logger } from 'pino';
import type { Slot } from '../state/slot-state.js';
import { pathOf } from './upstream.js';

/** One access-log line: what a request was, where it went and how it ended. */
export interface AccessRecord {
  requestId: string;
  slot: Slot;
  method: string | undefined;
  url: string | undefined;
  remoteAddress: string | undefined;
  status: number;
  durationMs: number;
  /** Bytes written to the client for this answer, headers included. */
  bytes: number;
  /** The client left before the answer was complete. */
  aborted: boolean;
  upstreamError: string | null;
}

/**
 * ACCESS_LOG=on: one pino line per request (and per WebSocket handshake).
 * The path is logged without its query string, which may carry tokens.
 */
export class AccessLog {
  private readonly logger: Logger;

  constructor(logger: Logger) {
    this.logger = logger.child({ log: 'access' });
  }

  write(record: AccessRecord): void {
    this.logger.info(
      {
        request_id: record.requestId,
        slot: record.slot,
        method: record.method,
        path: pathOf(record.url),
        status: record.status,
        duration_ms: Math.round(record.durationMs * 10) / 10,
        bytes: record.bytes,
        remote_addr: record.remoteAddress,
        ...(record.aborted ? { aborted: true } : {}),
        ...(record.upstreamError !== null ? { upstream_error: record.upstreamError } : {}),
      },
      'request',
    );
  }
}
