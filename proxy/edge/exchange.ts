import type { EventEmitter } from 'node:events';
import { IncomingMessage, ServerResponse, type ClientRequest } from 'node:http';
import type { ProxyServer, ServerOptions } from 'http-proxy-3';
import { DROPPED_RESPONSE_HEADERS } from './headers.js';
import type { Slot } from '../state/slot-state.js';
import type { UpstreamErrorReason } from './upstream-errors.js';
import type { Upstream, UpstreamExchange } from './upstream.js';

/**
 * The public listener is created with EdgeRequest and EdgeResponse, so every
 * request and response http-proxy-3 hands back is one of those (its response
 * type parameter is too narrow to say so: handlers narrow it themselves).
 */
export type EdgeProxyServer = ProxyServer<typeof EdgeRequest>;

/** Watches a request body that declared no length as it flows (body-limit.ts). */
export interface BodyWatch {
  readonly maxBytes: number;
  /** The body grew past maxBytes: called once, before the chunk that crossed it is forwarded. */
  exceeded(req: EdgeRequest): void;
}

/** A request on a slot's undici pool (slot-pass.ts), as the pipeline needs to see it. */
export interface UpstreamCall {
  /** undici has the request on a connection (the slot may be working on it). */
  readonly sent: boolean;
  /** Ends the request on the slot; `error` is reported as its failure. */
  abort(error: Error): void;
}

/** Why the upstream call is ended when the client left or its body was refused (never answered). */
const UPSTREAM_CANCELLED = new Error('the upstream call was cancelled');

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
  /**
   * The stream pass's upstream request from its creation on (proxyReq is
   * set only once it has a socket), and the http-proxy-3 server and options
   * it reports to: what that pass's shared event handlers read.
   */
  passRequest: ClientRequest | null = null;
  passServer: EventEmitter | null = null;
  passOptions: ServerOptions | null = null;
  /** MAX_BODY_SIZE on a chunked body: what watches it, the bytes seen, whether it went over. */
  bodyWatch: BodyWatch | null = null;
  bodyBytes = 0;
  bodyTooLarge = false;
  /** The request on the slot's undici pool, when slot-pass.ts sent it (proxyReq and passRequest stay null then). */
  upstreamCall: UpstreamCall | null = null;

  /**
   * Ends the upstream call, whichever pass made it (the undici pool's
   * request, or Node's http.request with its socket, so no half-sent body
   * stays on a pooled connection); nothing once it is over. The client left
   * or its body was refused: what follows is not reported as the slot's failure.
   */
  cancelUpstream(): void {
    const call = this.upstreamCall;
    if (call !== null) {
      call.abort(UPSTREAM_CANCELLED);
      return;
    }
    const upstreamRequest = this.passRequest ?? this.proxyReq;
    if (upstreamRequest !== null && !upstreamRequest.destroyed) upstreamRequest.destroy();
  }

  abortUpstream(error: Error): void {
    const call = this.upstreamCall;
    if (call !== null) {
      call.abort(error);
      // Still waiting for a connection: nothing runs on the slot, nothing to wait for.
      if (!call.sent) this.response?.destroy(error);
      return;
    }
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

/** Node's own implicit head writer (write, end and flushHeaders call it when no head is out yet). */
type ImplicitHeader = (this: ServerResponse) => void;
const nodeImplicitHeader = (ServerResponse.prototype as unknown as { _implicitHeader?: unknown })
  ._implicitHeader;
if (typeof nodeImplicitHeader !== 'function') {
  // Internal to Node but stable since its first releases: fail at start-up, not on traffic.
  throw new Error(
    'ServerResponse.prototype._implicitHeader is missing: review proxy/edge/exchange.ts',
  );
}
const implicitHeader = nodeImplicitHeader as ImplicitHeader;

/**
 * The public listener's response class. The slot's answer head is staged as
 * one list of header lines (headers.ts decides which cross) and written in
 * one batch when its first body byte or its end goes out; headers set one by
 * one pass through setHeader, which drops hop-by-hop headers (Node then
 * writes the client connection's own Connection and Keep-Alive), the headers
 * named in the slot's Connection header and the headers the proxy owns,
 * which are set with setOwnHeader instead.
 */
export class EdgeResponse extends ServerResponse<EdgeRequest> {
  /** Extra header names the slot's Connection header marked hop-by-hop. */
  droppedTokens: string[] | null = null;
  /** The proxy answers by itself (error-response.ts): nothing of a slot answer may be written. */
  proxyAnswered = false;
  /**
   * Strict-Transport-Security for an answer over TLS (null: none): added to
   * the slot's head unless it has its own, and to the proxy's own answers.
   */
  hsts: string | null = null;
  /** The slot's answer head, as [name, value, name, value...], until it goes out. */
  private stagedHead: string[] | null = null;
  private stagedMessage = '';

  /**
   * Stages the head of the slot's answer: the status at once (accounting
   * reads it), the header lines when the answer starts. Until then
   * headersSent stays false, so a slot failing before its first body byte
   * still gets the proxy's own error answer.
   */
  stageHead(status: number, message: string | undefined, lines: string[]): void {
    this.statusCode = status;
    this.stagedMessage = message ?? '';
    this.stagedHead = lines;
  }

  /** The proxy answers by itself after all: the slot's staged head is not written. */
  discardStagedHead(): void {
    this.stagedHead = null;
  }

  /**
   * Node writes the head implicitly through this method: a staged head goes
   * out with writeHead and a header list, which Node turns into the head
   * without building a header object first.
   */
  _implicitHeader(): void {
    const head = this.stagedHead;
    if (head === null) {
      implicitHeader.call(this);
      return;
    }
    this.stagedHead = null;
    if (this.hsts !== null && !hasLine(head, 'strict-transport-security')) {
      head.push('strict-transport-security', this.hsts);
    }
    if (this.stagedMessage !== '') this.writeHead(this.statusCode, this.stagedMessage, head);
    else this.writeHead(this.statusCode, head);
  }

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

/** Whether a header list ([name, value, ...], names lower-cased) has a line of `name`. */
function hasLine(lines: readonly string[], name: string): boolean {
  for (let i = 0; i < lines.length; i += 2) if (lines[i] === name) return true;
  return false;
}
