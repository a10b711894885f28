import type { ClientRequest, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import {
  constants as h2,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type Http2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Slot } from '../state/slot-state.js';
import type { CompressedBody } from './compression.js';
import type { UpstreamCall } from './exchange.js';
import { clientAddress } from './headers.js';
import { UpstreamTimeoutError, type UpstreamErrorReason } from './upstream-errors.js';
import type { Upstream, UpstreamExchange } from './upstream.js';

/**
 * One HTTP/2 stream's exchange with its slot (H2Exchange) and the event
 * handlers every exchange shares: plain functions called on the stream, the
 * upstream request and answer, each linked back to its exchange, so nothing
 * is allocated per event (h2-forward.ts is the forwarder that uses them).
 */
/** The objects an exchange's shared event handlers are called on, linked back to it. */
/** What the shared handlers call on the forwarder that owns an exchange (Http2Forwarder). */
export interface H2ExchangeOwner {
  readonly maxBodySize: number;
  bodyTooLarge(exchange: H2Exchange): void;
  finished(exchange: H2Exchange): void;
  upstreamFailed(exchange: H2Exchange, error: NodeJS.ErrnoException): void;
  relay(exchange: H2Exchange, proxyRes: LinkedUpstreamResponse): void;
  /** The slot answered an extended CONNECT's handshake with 101 (h2-websocket.ts). */
  upgraded(exchange: H2Exchange, proxyRes: IncomingMessage, socket: Socket, head: Buffer): void;
  upstreamCut(exchange: H2Exchange): void;
}

export interface Linked {
  h2Exchange?: H2Exchange;
}
export type LinkedRequest = ClientRequest & Linked;
export type LinkedUpstreamResponse = IncomingMessage & Linked;
export type LinkedResponse = Http2ServerResponse & Linked;
export type LinkedStream = ServerHttp2Stream & Linked;

/**
 * One HTTP/2 stream forwarded to a slot over HTTP/1.1: what the slot's drain
 * and this forwarder's shared handlers need. The session and client address
 * are taken at the start: Node drops a stream's session once it closes.
 */
export class H2Exchange implements UpstreamExchange {
  readonly startedAt = performance.now();
  readonly method: string;
  readonly url: string;
  readonly session: Http2Session | undefined;
  readonly remoteAddress: string;
  /** The headers sent to the slot (kept for a retry after a stale pooled socket). */
  headers: OutgoingHttpHeaders | null = null;
  /** The request on the slot's undici pool (h2-slot-call.ts), or the Node request below. */
  call: (UpstreamCall & { resume(): void }) | null = null;
  proxyReq: LinkedRequest | null = null;
  proxyRes: LinkedUpstreamResponse | null = null;
  retried = false;
  upstreamError: UpstreamErrorReason | null = null;
  /** The proxy ended the stream itself (a slot failing mid-answer, a drain timeout). */
  cut = false;
  /** The proxy ended the answer (Node reports a stream the client reset as finished too). */
  ended = false;
  /** An RFC 8441 extended CONNECT for a WebSocket: the slot gets an HTTP/1.1 handshake. */
  webSocket = false;
  /** MAX_BODY_SIZE refused the body (declared or counted). */
  bodyTooLarge = false;
  bodyBytes = 0;
  /** The answer is over (written in full, cut, or abandoned): 'close' was seen. */
  done = false;
  /** Body bytes written to the client (HTTP/2 frames and headers are the session's). */
  bytes = 0;
  /** The answer body goes through an encoder (COMPRESSION), which counts what it wrote. */
  compressed: CompressedBody | null = null;

  constructor(
    readonly forwarder: H2ExchangeOwner,
    readonly req: Http2ServerRequest,
    readonly res: LinkedResponse,
    readonly slot: Slot,
    readonly upstream: Upstream,
    readonly requestId: string,
  ) {
    this.method = req.method;
    this.url = req.url;
    this.session = req.stream.session;
    this.remoteAddress = clientAddress(req.socket as unknown as Socket);
  }

  abortUpstream(error: Error): void {
    const call = this.call;
    if (call !== null) {
      call.abort(error);
      return;
    }
    const proxyReq = this.proxyReq;
    if (proxyReq !== null) {
      // Already destroyed: the slot has answered in full and only the client is still reading.
      if (!proxyReq.destroyed) proxyReq.destroy(error);
      return;
    }
    this.cut = true;
    this.res.stream.close(h2.NGHTTP2_CANCEL);
  }

  /** HTTP/2 sessions get their GOAWAY from the TLS listener's close. */
  endConnectionAfterAnswer(): void {}
}

/** A request body without a declared length crossed MAX_BODY_SIZE: cut, the slot's request dropped. */
export function onRequestData(this: Http2ServerRequest, chunk: Buffer): void {
  const exchange = (this.stream as LinkedStream).h2Exchange;
  if (exchange === undefined || exchange.bodyTooLarge) return;
  exchange.bodyBytes += chunk.length;
  if (exchange.bodyBytes > exchange.forwarder.maxBodySize)
    exchange.forwarder.bodyTooLarge(exchange);
}

export function onStreamClose(this: LinkedStream): void {
  const exchange = this.h2Exchange;
  exchange?.forwarder.finished(exchange);
}

export function onUpstreamTimeout(this: LinkedRequest): void {
  this.destroy(new UpstreamTimeoutError('no answer from the slot within UPSTREAM_TIMEOUT'));
}

export function onUpstreamError(this: LinkedRequest, error: NodeJS.ErrnoException): void {
  const exchange = this.h2Exchange;
  // A request replaced by its retry: only the current one speaks for the exchange.
  if (exchange === undefined || exchange.proxyReq !== this) return;
  exchange.forwarder.upstreamFailed(exchange, error);
}

export function onUpstreamResponse(this: LinkedRequest, proxyRes: IncomingMessage): void {
  const exchange = this.h2Exchange;
  if (exchange === undefined) return;
  exchange.forwarder.relay(exchange, proxyRes as LinkedUpstreamResponse);
}

export function onUpstreamUpgrade(
  this: LinkedRequest,
  proxyRes: IncomingMessage,
  socket: Socket,
  head: Buffer,
): void {
  const exchange = this.h2Exchange;
  if (exchange === undefined || exchange.proxyReq !== this) {
    socket.destroy();
    return;
  }
  exchange.forwarder.upgraded(exchange, proxyRes, socket, head);
}

export function onUpstreamData(this: LinkedUpstreamResponse, chunk: Buffer): void {
  const exchange = this.h2Exchange;
  if (exchange === undefined || exchange.done) return;
  const res = exchange.res;
  if (res.writableEnded) return;
  exchange.bytes += chunk.length;
  if (!res.write(chunk)) {
    this.pause();
    res.once('drain', onClientDrain);
  }
}

export function onClientDrain(this: LinkedResponse): void {
  this.h2Exchange?.proxyRes?.resume();
}

export function onUpstreamEnd(this: LinkedUpstreamResponse): void {
  const exchange = this.h2Exchange;
  if (exchange === undefined || exchange.done) return;
  exchange.ended = true;
  // A compressed answer is ended by its encoder, once the last bytes are flushed.
  if (exchange.compressed === null && !exchange.res.writableEnded) exchange.res.end();
}

export function onUpstreamResponseClose(this: LinkedUpstreamResponse): void {
  if (this.complete) return;
  const exchange = this.h2Exchange;
  if (exchange !== undefined) exchange.forwarder.upstreamCut(exchange);
}
