import { IncomingMessage, ServerResponse, type ClientRequest } from 'node:http';
import { DROPPED_RESPONSE_HEADERS } from './headers.js';
import type { Slot } from './slot-state.js';
import type { UpstreamErrorReason } from './upstream-errors.js';
import type { Upstream, UpstreamExchange } from './upstream.js';

/** Told when a forwarded exchange is over (answered, failed or abandoned by the client). */
export interface ExchangeObserver {
  finished(req: EdgeRequest, res: EdgeResponse): void;
  /** The slot's answer broke off after its headers were sent. */
  upstreamAnswerCut(req: EdgeRequest, res: EdgeResponse): void;
}

/**
 * The public listener's request class (http.createServer's IncomingMessage
 * option): the per-request state of the proxy lives in declared fields, so
 * every request has the same shape and the event handlers of the pipeline
 * are plain functions that read these fields instead of per-request closures.
 */
export class EdgeRequest extends IncomingMessage implements UpstreamExchange {
  requestId = '';
  slot: Slot = 'blue';
  upstream: Upstream | null = null;
  /** performance.now() when the request reached the handler. */
  startedAt = 0;
  /** The upstream request, once it has a socket. */
  proxyReq: ClientRequest | null = null;
  response: EdgeResponse | null = null;
  observer: ExchangeObserver | null = null;
  /** Sent again once on a fresh connection after a stale pooled socket. */
  retried = false;
  upstreamError: UpstreamErrorReason | null = null;
  /** The client socket's bytesWritten when this request arrived (access log). */
  bytesBefore = 0;

  abortUpstream(error: Error): void {
    const upstreamRequest = this.proxyReq;
    if (upstreamRequest !== null) {
      // Already destroyed: the slot has answered in full and only the client is still reading.
      if (!upstreamRequest.destroyed) upstreamRequest.destroy(error);
      return;
    }
    // Never got an upstream socket: there is nothing to wait for.
    this.response?.destroy(error);
  }

  endConnectionAfterAnswer(): void {
    const res = this.response;
    if (res !== null && !res.headersSent) res.shouldKeepAlive = false;
  }
}

/**
 * The public listener's response class. Headers copied from the slot's answer
 * pass through setHeader, which drops hop-by-hop headers (Node then writes the
 * client connection's own Connection and Keep-Alive), the headers named in
 * the slot's Connection header and the headers the proxy owns, which are set
 * with setOwnHeader instead.
 */
export class EdgeResponse extends ServerResponse<EdgeRequest> {
  /** Extra header names the slot's Connection header marked hop-by-hop. */
  droppedTokens: string[] | null = null;

  override setHeader(name: string, value: number | string | readonly string[]): this {
    const key = name.toLowerCase();
    if (DROPPED_RESPONSE_HEADERS[key] === true) return this;
    const tokens = this.droppedTokens;
    if (tokens && tokens.includes(key)) return this;
    return super.setHeader(name, value);
  }

  /** Sets a header the proxy owns (X-Togather-Slot, X-Request-Id, its own error answers). */
  setOwnHeader(name: string, value: string): this {
    return super.setHeader(name, value);
  }
}
