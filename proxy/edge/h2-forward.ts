import {
  request,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
} from 'node:http';
import { constants as h2, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { requestIdFrom } from '../../common/request-id.js';
import type { AllowedHosts } from './allowed-hosts.js';
import { EdgeHandler, type EdgeContext } from './edge-handler.js';
import { applyToSlotHead, type EdgePolicy } from './edge-policy.js';
import type { ContentCoding } from './accept-encoding.js';
import type { CompressedIntake } from './compression.js';
import type { ProxyErrorBody } from './error-response.js';
import {
  H2Exchange,
  type H2ExchangeOwner,
  onRequestData,
  onStreamClose,
  onUpstreamData,
  onUpstreamEnd,
  onUpstreamError,
  onUpstreamResponse,
  onUpstreamResponseClose,
  onUpstreamTimeout,
  onUpstreamUpgrade,
  type LinkedRequest,
  type LinkedResponse,
  type LinkedStream,
  type LinkedUpstreamResponse,
} from './h2-exchange.js';
import type { StreamResetGuard } from './h2-reset-guard.js';
import { requestProblem } from './h2-request-checks.js';
import { H2SlotCall, poolTakes, type H2SlotCallOwner } from './h2-slot-call.js';
import { H2WebSocketBridge, toWebSocketHandshake } from './h2-websocket.js';
import {
  connectionTokens,
  DROPPED_RESPONSE_HEADERS,
  prepareRequestHeaders,
  responseHeaderLines,
} from './headers.js';
import { isIdempotentMethod } from './request-target.js';
import { upstreamPath } from './stream-pass.js';
import {
  classifyUpstreamError,
  isStaleSocketError,
  type UpstreamFailure,
} from './upstream-errors.js';
import { UpstreamWarnings } from './upstream-warnings.js';

export interface Http2ForwarderOptions extends EdgeContext {
  /** Strict-Transport-Security for every answer, or null (HSTS=off). */
  hsts: string | null;
  /** Counts streams clients abandon; GOAWAY past the bound. */
  resets: StreamResetGuard;
  /** MAX_HEADER_SIZE: bytes of a header list (names, values and 32 per field, as HTTP/2 counts). */
  maxHeaderSize: number;
  /**
   * The edge policy of the HTTP/1.1 path, applied by the same code: security
   * headers, compression, ALLOWED_HOSTS and MAX_BODY_SIZE.
   */
  policy: Pick<EdgePolicy, 'securityHeaders' | 'compression' | 'allowedHosts' | 'bodyLimit'>;
}

/** Why a slot call is ended when its stream ended first (never reported: the stream is gone). */
const STREAM_ABANDONED = new Error('the HTTP/2 stream ended before its answer');

const INVALID_RESPONSE: UpstreamFailure = {
  reason: 'protocol',
  status: 502,
  error: 'upstream_invalid_response',
};

/**
 * Requests of HTTP/2 clients (the TLS listener, ALPN h2), forwarded to the
 * active slot over HTTP/1.1 with the slot's own keep-alive pool, so every
 * promise of the HTTP/1.1 path holds here too: the slot is read once per
 * stream, X-Togather-Slot and X-Request-Id are on every answer (the proxy's
 * own 4xx/502/504 JSON answers included), the forwarded headers are the same
 * (X-Forwarded-Proto: https), streams in flight are drained with their slot,
 * and each stream is counted and logged once. A request body without
 * Content-Length goes to the slot chunked, never unframed. An RFC 8441
 * extended CONNECT for a WebSocket goes to the slot as an HTTP/1.1
 * handshake and, once the slot answers 101, becomes a tunnel (h2-websocket.ts).
 */
export class Http2Forwarder extends EdgeHandler implements H2ExchangeOwner, H2SlotCallOwner {
  private readonly hsts: string | null;
  private readonly resets: StreamResetGuard;
  private readonly maxHeaderSize: number;
  private readonly policy: Http2ForwarderOptions['policy'];
  private readonly droppedResponseHeaders: Readonly<Record<string, true>>;
  private readonly allowedHosts: AllowedHosts | null;
  /** MAX_BODY_SIZE in bytes; Infinity when off. */
  private readonly maxBodyBytes: number;
  private readonly warnings: UpstreamWarnings;
  private readonly webSockets: H2WebSocketBridge;

  constructor(options: Http2ForwarderOptions) {
    super(options);
    this.warnings = new UpstreamWarnings(options.logger);
    this.hsts = options.hsts;
    this.resets = options.resets;
    this.maxHeaderSize = options.maxHeaderSize;
    this.policy = options.policy;
    this.droppedResponseHeaders =
      options.policy.securityHeaders?.droppedResponseHeaders ?? DROPPED_RESPONSE_HEADERS;
    this.allowedHosts = options.policy.allowedHosts;
    this.maxBodyBytes = options.policy.bodyLimit?.maxBytes ?? Infinity;
    this.webSockets = new H2WebSocketBridge({
      metrics: options.metrics,
      accessLog: options.accessLog,
      droppedResponseHeaders: this.droppedResponseHeaders,
    });
  }

  /** The TLS listener's handler for HTTP/2 requests ('request', and CONNECT's 'connect'). */
  readonly handle = (req: Http2ServerRequest, response: Http2ServerResponse): void => {
    const exchange = this.begin(req, response);
    const problem = requestProblem(req, this.maxHeaderSize);
    if (problem !== null) {
      this.answer(exchange, problem[0], problem[1]);
      return;
    }
    const authority = req.headers[':authority'] ?? req.headers.host;
    if (this.allowedHosts !== null && !this.allowedHosts.allows(authority, req.url)) {
      this.answer(exchange, 421, 'misdirected_request');
      return;
    }
    exchange.webSocket = req.method === 'CONNECT';
    if (exchange.webSocket && this.lifecycle.closing) {
      this.answer(exchange, 503, 'shutting_down');
      return;
    }
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > this.maxBodyBytes) {
      exchange.bodyTooLarge = true;
      this.answer(exchange, 413, 'payload_too_large');
      return;
    }
    const headers: IncomingHttpHeaders = {};
    const incoming = req.headers;
    for (const name in incoming) {
      // Pseudo-headers are HTTP/2's own; :authority becomes Host below.
      if (name.charCodeAt(0) === 58 /* ":" */) continue;
      const value = incoming[name];
      if (value !== undefined) (headers as Record<string, string | string[]>)[name] = value;
    }
    headers.host = incoming[':authority'] ?? incoming.host;
    // nghttp2 refuses it from a client; the slot's framing is ours to choose either way.
    delete headers['transfer-encoding'];
    prepareRequestHeaders(headers, req.socket as unknown as Socket, {
      requestId: exchange.requestId,
      trustProxy: this.trustProxy,
      upgrade: false,
    });
    const outgoing = headers as OutgoingHttpHeaders;
    if (exchange.webSocket) toWebSocketHandshake(outgoing);
    else if (!req.stream.endAfterHeaders && outgoing['content-length'] === undefined) {
      // Without it Node would send the body of a GET or DELETE delimited by nothing.
      outgoing['transfer-encoding'] = 'chunked';
    }
    exchange.headers = outgoing;
    const hasBody = !req.stream.endAfterHeaders && !exchange.webSocket;
    if (poolTakes(exchange, outgoing, hasBody)) {
      // A body here has a declared length within MAX_BODY_SIZE, which nghttp2
      // holds the client to: nothing to count as it flows.
      H2SlotCall.send(exchange, this, outgoing, hasBody);
      return;
    }
    this.send(exchange);
    // A handshake has no body: what the client sends after it is the WebSocket's.
    if (req.stream.endAfterHeaders || exchange.webSocket) exchange.proxyReq?.end();
    else {
      // Counted before the pipe sees a chunk, so the one over the limit is not forwarded.
      if (this.maxBodyBytes !== Infinity) req.on('data', onRequestData);
      req.pipe(exchange.proxyReq!);
    }
  };

  /** 'checkExpectation' of an HTTP/2 request: an Expect other than 100-continue. */
  readonly refuseExpectation = (req: Http2ServerRequest, response: Http2ServerResponse): void => {
    this.answer(this.begin(req, response), 417, 'expectation_failed');
  };

  private begin(req: Http2ServerRequest, response: Http2ServerResponse): H2Exchange {
    const upstream = this.upstreams[this.registry.current.active];
    const res = response as LinkedResponse;
    const exchange = new H2Exchange(
      this,
      req,
      res,
      upstream.slot,
      upstream,
      requestIdFrom(req.headers['x-request-id']),
    );
    res.h2Exchange = exchange;
    // The stream's close, not the answer's: Node's compatibility answer does not
    // report the close of a HEAD stream that the client reset before its head.
    const stream = req.stream as LinkedStream;
    stream.h2Exchange = exchange;
    stream.on('close', onStreamClose);
    upstream.begin(exchange);
    return exchange;
  }

  /** Sends (or, after a stale pooled socket, sends again) the request to the exchange's slot. */
  private send(exchange: H2Exchange): void {
    const target = exchange.upstream.target;
    const hostname = target.hostname.startsWith('[')
      ? target.hostname.slice(1, -1)
      : target.hostname;
    const base = target.pathname === '/' ? '' : target.pathname.replace(/\/+$/, '');
    const proxyReq = request({
      protocol: target.protocol,
      host: hostname,
      hostname,
      port: target.port === '' ? undefined : Number(target.port),
      method: exchange.webSocket ? 'GET' : exchange.method,
      path: base + upstreamPath(exchange.url),
      headers: exchange.headers ?? {},
      agent: exchange.upstream.agent,
    }) as LinkedRequest;
    proxyReq.h2Exchange = exchange;
    exchange.proxyReq = proxyReq;
    proxyReq.on('timeout', onUpstreamTimeout);
    proxyReq.on('error', onUpstreamError);
    proxyReq.on('response', onUpstreamResponse);
    if (exchange.webSocket) proxyReq.on('upgrade', onUpstreamUpgrade);
  }

  /** The slot answered (the Node request): its head goes out at once, its body as it comes. */
  relay(exchange: H2Exchange, proxyRes: LinkedUpstreamResponse): void {
    const coding = exchange.done
      ? false
      : this.stageHead(exchange, proxyRes.statusCode ?? 0, proxyRes.headers);
    if (coding === false) {
      proxyRes.destroy();
      return;
    }
    exchange.proxyRes = proxyRes;
    proxyRes.h2Exchange = exchange;
    if (coding !== null) {
      exchange.compressed = this.policy.compression!.relay(proxyRes, exchange.res, coding);
    } else {
      proxyRes.on('data', onUpstreamData);
    }
    proxyRes.on('end', onUpstreamEnd);
    proxyRes.on('close', onUpstreamResponseClose);
  }

  /** The slot answered through the pool (h2-slot-call.ts): the head staged the same way. */
  slotHeadArrived(
    exchange: H2Exchange,
    status: number,
    headers: IncomingHttpHeaders,
  ): CompressedIntake | null | undefined {
    const coding = exchange.done ? false : this.stageHead(exchange, status, headers);
    if (coding === false) return undefined;
    return coding === null
      ? null
      : this.policy.compression!.encoderInto(exchange.res, coding, headers);
  }

  /**
   * Writes the slot's answer head on the stream with the edge policy's edits.
   * Returns the coding its body is compressed with (null: as it is), or false
   * when the head cannot go out (the stream is then answered 502).
   */
  private stageHead(
    exchange: H2Exchange,
    status: number,
    headers: IncomingHttpHeaders,
  ): ContentCoding | null | false {
    if (status < 200 || status > 599) {
      // HTTP/2 has no status line for these (1xx answers are not final ones).
      this.fail(exchange, INVALID_RESPONSE, undefined);
      return false;
    }
    // RFC 9110 §8.6: never on a 204; HTTP/2 clients reset a stream whose length disagrees.
    if (status === 204) delete headers['content-length'];
    const lines = this.slotHead(exchange, headers, this.droppedResponseHeaders);
    const coding = applyToSlotHead(this.policy, lines, exchange.req, status, headers);
    try {
      exchange.res.writeHead(status, lines);
    } catch (error) {
      // A header HTTP/2 cannot carry: refused here rather than sent broken.
      this.fail(exchange, INVALID_RESPONSE, error as Error);
      return false;
    }
    return coding;
  }

  /**
   * A slot answer's head as the client gets it over HTTP/2, as on HTTP/1.1
   * (headers.ts: the same dropped set, which holds what HTTP/2 cannot carry), with HSTS.
   */
  private slotHead(
    exchange: H2Exchange,
    headers: IncomingHttpHeaders,
    dropped: Readonly<Record<string, true>>,
  ): string[] {
    const lines = responseHeaderLines(
      exchange.slot,
      exchange.requestId,
      headers,
      connectionTokens(headers.connection),
      dropped,
    );
    if (this.hsts !== null && headers['strict-transport-security'] === undefined) {
      lines.push('strict-transport-security', this.hsts);
    }
    return lines;
  }

  /** The slot switched the handshake's connection to WebSocket: the stream becomes its tunnel. */
  upgraded(exchange: H2Exchange, proxyRes: IncomingMessage, socket: Socket, head: Buffer): void {
    if (exchange.done) {
      socket.destroy();
      return;
    }
    try {
      // What the slot agreed to (Sec-WebSocket-Protocol, -Extensions) goes on the stream's 200.
      const head = this.slotHead(exchange, proxyRes.headers, this.webSockets.droppedFromAnswer);
      exchange.res.writeHead(200, head);
    } catch (error) {
      socket.destroy();
      this.fail(exchange, INVALID_RESPONSE, error as Error);
      return;
    }
    // Not an exchange any more: the drain follows it as a WebSocket, and it was counted as one.
    exchange.done = true;
    exchange.upstream.end(exchange);
    this.webSockets.open(exchange, socket, head);
  }

  /** The upstream request failed: sent again once after a stale pooled socket, else answered. */
  upstreamFailed(exchange: H2Exchange, error: NodeJS.ErrnoException): void {
    if (exchange.done) return;
    const res = exchange.res;
    if (
      !exchange.retried &&
      !res.headersSent &&
      isStaleSocketError(error) &&
      // undici does not say whether the connection was a pooled one: its stale-socket failures retry once.
      (exchange.proxyReq?.reusedSocket === true || exchange.call !== null) &&
      exchange.req.stream.endAfterHeaders &&
      isIdempotentMethod(exchange.method)
    ) {
      // The slot closed a pooled keep-alive socket as we reused it; the request never reached it.
      exchange.retried = true;
      if (exchange.call !== null) {
        H2SlotCall.send(exchange, this, exchange.headers ?? {}, false);
        return;
      }
      this.send(exchange);
      exchange.proxyReq?.end();
      return;
    }
    this.fail(exchange, classifyUpstreamError(error), error);
  }

  /** The slot cut its answer short after the head went out: the stream is cut too. */
  upstreamCut(exchange: H2Exchange): void {
    if (exchange.done || exchange.ended) return;
    this.warnings.answerCut(exchange, this.metrics, true);
    exchange.cut = true;
    exchange.res.stream.close(h2.NGHTTP2_INTERNAL_ERROR);
  }

  private fail(exchange: H2Exchange, failure: UpstreamFailure, error: Error | undefined): void {
    exchange.upstreamError = failure.reason;
    this.metrics.countUpstreamError(exchange.slot, failure.reason);
    this.warnings.warn(exchange.slot, exchange.requestId, failure, error, true);
    if (exchange.res.headersSent) {
      exchange.cut = true;
      exchange.res.stream.close(h2.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    this.answer(exchange, failure.status, failure.error);
  }

  /** The proxy's own answer: JSON {error, slot, request_id}, as on HTTP/1.1. */
  private answer(exchange: H2Exchange, status: number, error: string): void {
    const res = exchange.res;
    if (exchange.done || res.headersSent) return;
    const payload: ProxyErrorBody = { error, slot: exchange.slot, request_id: exchange.requestId };
    const text = JSON.stringify(payload);
    const headers: OutgoingHttpHeaders = {
      'x-togather-slot': exchange.slot,
      'x-request-id': exchange.requestId,
      'content-type': 'application/json; charset=utf-8',
      'content-length': String(Buffer.byteLength(text)),
      'cache-control': 'no-store',
    };
    if (this.hsts !== null) headers['strict-transport-security'] = this.hsts;
    this.policy.securityHeaders?.addMissingTo(headers, {});
    res.writeHead(status, headers);
    exchange.ended = true;
    if (exchange.method === 'HEAD') {
      res.end();
      return;
    }
    exchange.bytes += Buffer.byteLength(text);
    res.end(text);
  }

  /** MAX_BODY_SIZE, for the body counter (Infinity: off). */
  get maxBodySize(): number {
    return this.maxBodyBytes;
  }

  /** The body grew past MAX_BODY_SIZE: nothing more goes to the slot; 413 if no answer started. */
  bodyTooLarge(exchange: H2Exchange): void {
    exchange.bodyTooLarge = true;
    exchange.req.unpipe();
    exchange.call?.abort(STREAM_ABANDONED);
    const proxyReq = exchange.proxyReq;
    if (proxyReq !== null && !proxyReq.destroyed) proxyReq.destroy();
    if (exchange.res.headersSent) {
      exchange.cut = true;
      exchange.req.stream.close(h2.NGHTTP2_CANCEL);
      return;
    }
    this.answer(exchange, 413, 'payload_too_large');
  }

  /** The stream is over: accounting, and nothing left running on the slot for it. */
  finished(exchange: H2Exchange): void {
    if (exchange.done) return;
    exchange.done = true;
    exchange.upstream.end(exchange);
    const res = exchange.res;
    const rstCode = exchange.req.stream.rstCode;
    const aborted = !exchange.ended || (rstCode !== undefined && rstCode !== h2.NGHTTP2_NO_ERROR);
    const status = exchange.bodyTooLarge ? 413 : aborted && !res.headersSent ? 499 : res.statusCode;
    const durationMs = performance.now() - exchange.startedAt;
    this.metrics.observeRequest(exchange.slot, exchange.method, status, durationMs / 1000);
    if (aborted) {
      exchange.call?.abort(STREAM_ABANDONED);
      const proxyReq = exchange.proxyReq;
      if (proxyReq !== null && !proxyReq.destroyed) proxyReq.destroy();
      if (!exchange.cut) this.resets.noteAbandoned(exchange.session);
    }
    this.accessLog?.write({
      requestId: exchange.requestId,
      slot: exchange.slot,
      method: exchange.method,
      url: exchange.url,
      remoteAddress: exchange.remoteAddress,
      status,
      durationMs,
      bytes: exchange.bytes + (exchange.compressed?.bytesWritten ?? 0),
      aborted,
      upstreamError: exchange.upstreamError,
    });
  }
}
