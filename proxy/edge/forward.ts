import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Stream, type Duplex } from 'node:stream';
import { createProxyServer, type ProxyServer, type ServerOptions } from 'http-proxy-3';
import type { Logger } from 'pino';
import { newRequestId, requestIdFrom } from '../../common/request-id.js';
import type { AccessLog } from './access-log.js';
import { rawProxyError, sendProxyError } from './error-response.js';
import { EdgeRequest, EdgeResponse, type ExchangeObserver } from './exchange.js';
import {
  clientAddress,
  connectionTokens,
  hostHeaderProblem,
  prepareRequestHeaders,
  responseHeaderLines,
} from './headers.js';
import type { ProxyMetrics } from '../metrics.js';
import { isTlsSocket, type EdgeFront } from './plain-front.js';
import type { SlotRegistry } from '../state/slot-registry.js';
import { createStreamPass } from './stream-pass.js';
import type { Slot } from '../state/slot-state.js';
import {
  classifyUpstreamError,
  isStaleSocketError,
  UpstreamTimeoutError,
  type UpstreamFailure,
} from './upstream-errors.js';
import type { Upstream } from './upstream.js';

/**
 * The public listener is created with EdgeRequest and EdgeResponse, so every
 * request and response http-proxy-3 hands back is one of those (its response
 * type parameter is too narrow to say so: handlers narrow it themselves).
 */
export type EdgeProxyServer = ProxyServer<typeof EdgeRequest>;

/** Shared between the pipeline parts: flips once when the proxy starts shutting down. */
export interface Lifecycle {
  closing: boolean;
}

export interface ForwarderOptions {
  registry: SlotRegistry;
  upstreams: Readonly<Record<Slot, Upstream>>;
  metrics: ProxyMetrics;
  /** null when ACCESS_LOG is off. */
  accessLog: AccessLog | null;
  logger: Logger;
  /** TRUST_PROXY: keep an incoming X-Forwarded-* chain instead of replacing it. */
  trustProxy: boolean;
  lifecycle: Lifecycle;
  /** With TLS on: the plain listener's own answers and HSTS (null: forward everything). */
  front?: EdgeFront | null;
}

/** An upstream answer, linked back to the client answer it is piped into. */
interface UpstreamResponse extends IncomingMessage {
  edgeResponse?: EdgeResponse;
}

/** Methods that may be sent again when a pooled socket turns out to be closed. */
const IDEMPOTENT: Readonly<Record<string, true>> = Object.assign(
  Object.create(null) as Record<string, true>,
  { GET: true, HEAD: true, OPTIONS: true, PUT: true, DELETE: true, TRACE: true },
);

/** How often upstream failures of one slot reach the log at most (the metric counts all). */
const WARN_INTERVAL_MS = 1000;

/**
 * The request pipeline of the public listener, on http-proxy-3: reads the
 * active slot once per request, rewrites headers (headers.ts), forwards with
 * the slot's keep-alive agent and streams both bodies, answers upstream
 * failures with 502/504 JSON, and accounts every exchange (inflight, metrics,
 * access log) when the client answer closes. Its handlers are created once
 * per proxy; per-request state lives on EdgeRequest.
 */
export class Forwarder implements ExchangeObserver {
  /** The http-proxy-3 server WebSocket handshakes go through (websocket.ts); requests use webProxies. */
  readonly proxy: EdgeProxyServer;

  private readonly registry: SlotRegistry;
  private readonly upstreams: Readonly<Record<Slot, Upstream>>;
  private readonly metrics: ProxyMetrics;
  private readonly accessLog: AccessLog | null;
  private readonly logger: Logger;
  private readonly trustProxy: boolean;
  private readonly lifecycle: Lifecycle;
  private readonly front: EdgeFront | null;
  /** http-proxy-3 options per slot, built once. */
  private readonly slotOptions: Readonly<Record<Slot, ServerOptions>>;
  /**
   * One http-proxy-3 server per slot for requests with a body and one for
   * requests without, each with its options as its own: web() is then
   * called without options, which http-proxy-3 would otherwise merge into
   * its own into a new object per request (an object V8 builds slowly and
   * every pass then reads slowly).
   */
  private readonly webProxies: Readonly<
    Record<'body' | 'bodyless', Readonly<Record<Slot, EdgeProxyServer>>>
  >;
  private readonly lastWarnAt: Record<Slot, number> = { blue: -Infinity, green: -Infinity };
  private readonly suppressedWarnings: Record<Slot, number> = { blue: 0, green: 0 };

  constructor(options: ForwarderOptions) {
    this.registry = options.registry;
    this.upstreams = options.upstreams;
    this.metrics = options.metrics;
    this.accessLog = options.accessLog;
    this.logger = options.logger;
    this.trustProxy = options.trustProxy;
    this.lifecycle = options.lifecycle;
    this.front = options.front ?? null;
    this.slotOptions = {
      blue: upstreamOptions(options.upstreams.blue),
      green: upstreamOptions(options.upstreams.green),
    };
    const { blue, green } = this.slotOptions;
    this.webProxies = {
      body: { blue: this.webProxy(blue), green: this.webProxy(green) },
      bodyless: {
        blue: this.webProxy({ ...blue, buffer: NO_BODY }),
        green: this.webProxy({ ...green, buffer: NO_BODY }),
      },
    };
    this.proxy = createProxyServer<typeof EdgeRequest>({});
    this.proxy.on('error', this.onError);
  }

  /** http-proxy-3 options for `slot`, which WebSocket handshakes pass to `proxy`. */
  optionsFor(slot: Slot): ServerOptions {
    return this.slotOptions[slot];
  }

  private webProxy(options: ServerOptions): EdgeProxyServer {
    const proxy = createProxyServer<typeof EdgeRequest>(options);
    keepOnlyStreamPass(proxy);
    proxy.before('web', 'stream', createStreamPass());
    proxy.on('proxyReq', this.onProxyReq);
    proxy.on('proxyRes', this.onProxyRes);
    proxy.on('error', this.onError);
    return proxy;
  }

  /** The public listener's 'request' handler. */
  readonly handle = (req: EdgeRequest, res: EdgeResponse): void => {
    const upstream = this.upstreams[this.registry.current.active];
    const slot = upstream.slot;
    const requestId = requestIdFrom(req.headers['x-request-id']);
    req.slot = slot;
    req.upstream = upstream;
    req.requestId = requestId;
    req.startedAt = performance.now();
    req.response = res;
    req.observer = this;
    if (this.accessLog !== null) req.bytesBefore = req.socket.bytesWritten;
    const front = this.front;
    if (front !== null && front.hsts !== null && isTlsSocket(req.socket)) res.hsts = front.hsts;
    // X-Togather-Slot and X-Request-Id go out with the slot's head or the proxy's error answer.
    res.on('close', onResponseClose);
    if (this.lifecycle.closing) res.shouldKeepAlive = false;
    if (res.socket === null) {
      // Pipelined behind an answer still being written: forwarded when its turn
      // comes, so a client that pipelines and never reads holds one slot answer
      // in the proxy, not one per request it sent.
      res.once('socket', () => this.start(req, res));
      return;
    }
    this.start(req, res);
  };

  /** Checks a request whose answer now has the client connection and forwards it to its slot. */
  private start(req: EdgeRequest, res: EdgeResponse): void {
    // The client left while the request waited for its turn.
    if (req.socket.destroyed) return;
    const slot = req.slot;
    const requestId = req.requestId;
    this.upstreams[slot].begin(req);
    const front = this.front;
    const plain = front !== null && !isTlsSocket(req.socket);
    if (plain && front.challenge(req, res)) return;

    if (req.httpVersionMajor !== 1) {
      // An HTTP/0.9 request line, or HTTP/2.0 and above in HTTP/1 syntax: only HTTP/1.x is spoken here.
      res.shouldKeepAlive = false;
      sendProxyError(res, 505, 'http_version_not_supported', slot, requestId);
      return;
    }
    const url = req.url;
    if (url === undefined || url.charCodeAt(0) !== 47 /* "/" */) {
      if (!toOriginForm(req)) {
        sendProxyError(res, 400, 'bad_request_target', slot, requestId);
        return;
      }
    }
    // Node's own check of a missing Host would answer before this handler, without X-Togather-Slot.
    const hostProblem = hostHeaderProblem(req);
    if (hostProblem !== null) {
      sendProxyError(res, 400, hostProblem, slot, requestId);
      return;
    }
    if (plain && front.redirect(req, res)) return;
    prepareRequestHeaders(req.headers, req.socket, {
      requestId,
      trustProxy: this.trustProxy,
      upgrade: false,
    });
    this.forward(req, res);
  }

  /** Hands the request to http-proxy-3 for its slot. */
  private forward(req: EdgeRequest, res: EdgeResponse): void {
    this.webProxies[hasNoBody(req) ? 'bodyless' : 'body'][req.slot].web(req, res);
  }

  /** The exchange is over: the client answer was written in full or the client left. */
  finished(req: EdgeRequest, res: EdgeResponse): void {
    const upstream = req.upstream;
    if (upstream === null) return;
    upstream.end(req);
    const aborted = !res.writableFinished;
    const status = aborted && !res.headersSent ? 499 : res.statusCode;
    const durationMs = performance.now() - req.startedAt;
    this.metrics.observeRequest(req.slot, req.method, status, durationMs / 1000);
    if (aborted) {
      // The client left: nothing may keep running on the slot for it.
      const upstreamRequest = req.proxyReq;
      if (upstreamRequest !== null && !upstreamRequest.destroyed) upstreamRequest.destroy();
    }
    if (this.accessLog !== null) {
      const socket = req.socket;
      this.accessLog.write({
        requestId: req.requestId,
        slot: req.slot,
        method: req.method,
        url: req.url,
        remoteAddress: clientAddress(socket),
        status,
        durationMs,
        bytes: socket.bytesWritten - req.bytesBefore,
        aborted,
        upstreamError: req.upstreamError,
      });
    }
  }

  /** The slot cut its answer short after the headers were sent: the client answer is cut too. */
  upstreamAnswerCut(req: EdgeRequest, res: EdgeResponse): void {
    if (req.upstreamError === null) {
      req.upstreamError = 'reset';
      this.metrics.countUpstreamError(req.slot, 'reset');
      this.warn(req, { reason: 'reset', status: 502, error: 'upstream_reset' }, undefined);
    }
    res.destroy();
  }

  /**
   * The public listener's 'clientError' handler: requests Node could not
   * parse, headers over MAX_HEADER_SIZE (431), header or request timeouts
   * (408). Answered like Node would, plus X-Togather-Slot and a JSON body.
   */
  readonly onClientError = (error: NodeJS.ErrnoException, stream: Duplex): void => {
    // The public listener is a net-based http.Server: its client streams are net.Sockets.
    const socket = stream as Socket;
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const pending = pendingAnswer(socket);
    if (pending !== null && pending.req.complete && error.code?.startsWith('HPE_') === true) {
      // The bad bytes follow a complete request whose answer is still on its
      // way: that answer goes first, else the client would read this error as
      // the answer to a request the slot did serve. Node parses nothing more
      // on this connection, so once the answers end only the error is left.
      pending.once('close', () => setImmediate(() => this.onClientError(error, socket)));
      return;
    }
    if (pending?.headersSent === true) {
      socket.destroy();
      return;
    }
    const [status, code] = clientErrorAnswer(error);
    const slot = this.registry.current.active;
    const requestId = newRequestId();
    socket.write(rawProxyError(status, code, slot, requestId));
    socket.destroySoon();
    this.metrics.countRequest(slot, undefined, status);
    this.accessLog?.write({
      requestId,
      slot,
      method: undefined,
      url: undefined,
      remoteAddress: clientAddress(socket),
      status,
      durationMs: 0,
      bytes: 0,
      aborted: false,
      upstreamError: null,
    });
  };

  /** 'checkExpectation': an Expect header other than 100-continue. */
  readonly onCheckExpectation = (req: EdgeRequest, res: EdgeResponse): void => {
    this.answerLocally(req, res, 417, 'expectation_failed');
  };

  /** 'connect': the public listener is not a forward proxy. */
  readonly onConnect = (req: EdgeRequest, stream: Duplex): void => {
    const socket = stream as Socket;
    const slot = this.registry.current.active;
    const requestId = requestIdFrom(req.headers['x-request-id']);
    socket.on('error', ignoreError);
    socket.write(rawProxyError(405, 'method_not_allowed', slot, requestId));
    socket.destroySoon();
    this.metrics.countRequest(slot, req.method, 405);
  };

  private answerLocally(req: EdgeRequest, res: EdgeResponse, status: number, error: string): void {
    const slot = this.registry.current.active;
    const requestId = requestIdFrom(req.headers['x-request-id']);
    sendProxyError(res, status, error, slot, requestId);
    this.metrics.countRequest(slot, req.method, status);
  }

  private readonly onProxyReq = (proxyReq: ClientRequest, req: EdgeRequest): void => {
    req.proxyReq = proxyReq;
    // The slot's agent sets UPSTREAM_TIMEOUT on the socket; Node only reports it.
    proxyReq.on('timeout', onUpstreamTimeout);
  };

  /**
   * The slot answered (selfHandleResponse: http-proxy-3 leaves the answer to
   * this handler instead of copying it header by header): its head is staged
   * in one list and its body relayed (relayBody).
   */
  private readonly onProxyRes = (
    proxyRes: UpstreamResponse,
    req: EdgeRequest,
    response: ServerResponse,
  ): void => {
    const res = response as EdgeResponse;
    const dropped = connectionTokens(proxyRes.headers.connection);
    res.droppedTokens = dropped;
    proxyRes.edgeResponse = res;
    proxyRes.on('close', onUpstreamResponseClose);
    if (!res.headersSent) {
      const lines = responseHeaderLines(req.slot, req.requestId, proxyRes.headers, dropped);
      res.stageHead(proxyRes.statusCode ?? 502, proxyRes.statusMessage, lines);
    }
    if (!res.writableEnded) relayBody(proxyRes, res);
  };

  private readonly onError = (
    error: Error,
    req: EdgeRequest,
    target: ServerResponse | Socket,
  ): void => {
    // WebSocket handshakes fail with a socket here; websocket.ts answers those.
    if (!(target instanceof EdgeResponse)) return;
    const res = target;
    const upstream = req.upstream;
    if (upstream === null || res.writableEnded) return;
    if (res.destroyed || req.socket.destroyed) {
      // The client left: not the slot's failure.
      req.proxyReq?.destroy();
      return;
    }
    if (
      !req.retried &&
      !res.headersSent &&
      isStaleSocketError(error) &&
      req.proxyReq?.reusedSocket === true &&
      isReplayable(req)
    ) {
      // The slot closed a pooled keep-alive socket as we reused it; the request never reached it.
      req.retried = true;
      req.proxyReq = null;
      this.forward(req, res);
      return;
    }
    const failure = classifyUpstreamError(error);
    req.upstreamError = failure.reason;
    this.metrics.countUpstreamError(req.slot, failure.reason);
    this.warn(req, failure, error);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendProxyError(res, failure.status, failure.error, req.slot, req.requestId);
  };

  private warn(req: EdgeRequest, failure: UpstreamFailure, error: Error | undefined): void {
    const slot = req.slot;
    const now = performance.now();
    if (now - this.lastWarnAt[slot] < WARN_INTERVAL_MS) {
      this.suppressedWarnings[slot]++;
      return;
    }
    this.lastWarnAt[slot] = now;
    const suppressed = this.suppressedWarnings[slot];
    this.suppressedWarnings[slot] = 0;
    this.logger.warn(
      {
        slot,
        request_id: req.requestId,
        reason: failure.reason,
        status: failure.status,
        code: (error as NodeJS.ErrnoException | undefined)?.code,
        error: error?.message,
        ...(suppressed > 0 ? { suppressed } : {}),
      },
      'upstream request failed',
    );
  }
}

/**
 * The request body http-proxy-3 pipes into the upstream request when the
 * client's request has none: it ends the upstream request at once, with the
 * same head and framing as piping the empty request, without a pipe's
 * listeners and ticks (Node discards the unread empty request when the
 * answer ends, as it does for any handler that does not read it).
 */
class NoBody extends Stream {
  override pipe<T extends NodeJS.WritableStream>(destination: T): T {
    destination.end();
    return destination;
  }
}
const NO_BODY = new NoBody();

/** RFC 9112 §6.3: a request without Content-Length or Transfer-Encoding has no body. */
function hasNoBody(req: IncomingMessage): boolean {
  const headers = req.headers;
  if (headers['transfer-encoding'] !== undefined) return false;
  const length = headers['content-length'];
  return length === undefined || length === '0';
}

function upstreamOptions(upstream: Upstream): ServerOptions {
  const target = upstream.target;
  return {
    target,
    agent: upstream.agent,
    // Pass the request target as received instead of re-parsing and normalising it.
    toProxy: true,
    // A slot URL without a path needs no prefix: spares http-proxy-3 a URL parse per request.
    prependPath: target.pathname !== '/' || target.search !== '',
    // onProxyRes writes the answer (its header passes would copy one header at a time).
    selfHandleResponse: true,
  };
}

/**
 * http-proxy-3 runs four passes per request: deleteLength, timeout, XHeaders
 * and stream. deleteLength turns a chunked DELETE or OPTIONS body into
 * `Content-Length: 0` followed by the body bytes (a request-smuggling hazard
 * on a keep-alive upstream connection); timeout and XHeaders are replaced by
 * the agent's timeout and headers.ts. Only `stream` is kept, behind the data
 * plane's own pass (stream-pass.ts), which forwards every request to an http
 * slot URL without a path and leaves the others to `stream`. The pass list is
 * internal to http-proxy-3 (pinned at 2.0.1): an unexpected list fails here
 * at start-up rather than changing behaviour silently.
 */
function keepOnlyStreamPass(proxy: EdgeProxyServer): void {
  const internals = proxy as unknown as { webPasses?: Array<{ name: string }> };
  const passes = internals.webPasses;
  const names = passes?.map((pass) => pass.name).join(',');
  if (passes === undefined || names !== 'deleteLength,timeout,XHeaders,stream') {
    throw new Error(
      `http-proxy-3 web passes are not the expected ones (${names ?? 'none'}): review proxy/edge/forward.ts`,
    );
  }
  passes.splice(0, 3);
}

function onResponseClose(this: EdgeResponse): void {
  const req = this.req;
  req.observer?.finished(req, this);
}

function onUpstreamTimeout(this: ClientRequest): void {
  this.destroy(new UpstreamTimeoutError('no answer from the slot within UPSTREAM_TIMEOUT'));
}

/**
 * Streams the slot's answer body into the client answer, as a pipe would
 * (the slot is paused while the client connection is full, the answer ends
 * with the slot's), with two shared listeners instead of a pipe's eight
 * listeners and its clean-up per request. Nothing is written to an answer
 * that is already ended or destroyed: the client left (the upstream request
 * is destroyed then) or the proxy answered by itself.
 */
function relayBody(proxyRes: UpstreamResponse, res: EdgeResponse): void {
  proxyRes.on('data', onUpstreamData);
  proxyRes.on('end', onUpstreamEnd);
  if (res.writableNeedDrain) waitForDrain(proxyRes, res);
}

function onUpstreamData(this: UpstreamResponse, chunk: Buffer): void {
  const res = this.edgeResponse;
  if (res === undefined || res.destroyed || res.writableEnded) return;
  if (!res.write(chunk)) waitForDrain(this, res);
}

function onUpstreamEnd(this: UpstreamResponse): void {
  const res = this.edgeResponse;
  if (res !== undefined && !res.destroyed && !res.writableEnded) res.end();
}

function waitForDrain(proxyRes: UpstreamResponse, res: EdgeResponse): void {
  proxyRes.pause();
  res.once('drain', () => proxyRes.resume());
}

function onUpstreamResponseClose(this: UpstreamResponse): void {
  if (this.complete) return;
  const res = this.edgeResponse;
  if (res === undefined || res.destroyed || res.writableFinished) return;
  res.req.observer?.upstreamAnswerCut(res.req, res);
}

/** Absolute-form targets (`GET http://host/path`) become origin-form; anything else is refused. */
function toOriginForm(req: EdgeRequest): boolean {
  const url = req.url;
  if (url === undefined || !/^https?:\/\//i.test(url) || !URL.canParse(url)) return false;
  const parsed = new URL(url);
  req.url = `${parsed.pathname}${parsed.search}`;
  // RFC 9112 §3.2.2: the authority of an absolute-form target replaces Host.
  req.headers.host = parsed.host;
  return true;
}

function isReplayable(req: EdgeRequest): boolean {
  if (req.method === undefined || IDEMPOTENT[req.method] !== true) return false;
  const length = req.headers['content-length'];
  return (length === undefined || length === '0') && req.headers['transfer-encoding'] === undefined;
}

/** The answer Node is writing on this connection now, if any (its own internal field). */
function pendingAnswer(socket: Socket): EdgeResponse | null {
  const inFlight = (socket as Socket & { _httpMessage?: EdgeResponse | null })._httpMessage;
  return inFlight ?? null;
}

/** What Node's parser attaches to its errors: the chunk it failed in, and how far it got. */
interface ParseError extends NodeJS.ErrnoException {
  rawPacket?: unknown;
  bytesParsed?: unknown;
}

function clientErrorAnswer(error: ParseError): [number, string] {
  switch (error.code) {
    case 'HPE_HEADER_OVERFLOW':
      return overflowInRequestLine(error)
        ? [414, 'uri_too_long']
        : [431, 'request_header_fields_too_large'];
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return [413, 'chunk_extensions_too_large'];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, 'request_timeout'];
    default:
      return [400, 'bad_request'];
  }
}

/** A request line not ended yet: a method, a space and the start of a target. */
const OPEN_REQUEST_LINE = /^[A-Z]+ (?:\/|\*|[A-Za-z][A-Za-z0-9+.-]*:\/\/)[^\r\n ]*$/;

/**
 * Whether the header block overflowed MAX_HEADER_SIZE inside the request line
 * (a target too long: 414) rather than in the header fields (431). Node counts
 * both against one limit and says only where in the failing chunk it stopped;
 * a target trickled over several chunks is not recognised and gets 431.
 */
function overflowInRequestLine(error: ParseError): boolean {
  const { rawPacket, bytesParsed } = error;
  if (!Buffer.isBuffer(rawPacket) || typeof bytesParsed !== 'number') return false;
  const seen = rawPacket.subarray(0, bytesParsed).toString('latin1');
  // A keep-alive connection's earlier request may end in the same chunk.
  const previousEnd = seen.lastIndexOf('\r\n\r\n');
  return OPEN_REQUEST_LINE.test(previousEnd === -1 ? seen : seen.slice(previousEnd + 4));
}

function ignoreError(): void {}
