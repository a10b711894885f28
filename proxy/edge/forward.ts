import type {
  ClientRequest,
  IncomingHttpHeaders,
  IncomingMessage,
  ServerResponse,
} from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ServerOptions } from 'http-proxy-3';
import { requestIdFrom } from '../../common/request-id.js';
import type { ContentCoding } from './accept-encoding.js';
import { EdgeHandler, type EdgeContext } from './edge-handler.js';
import { applyToSlotHead, type EdgePolicy } from './edge-policy.js';
import type { ErrorAnswers } from './error-response.js';
import { EdgeResponse, type EdgeRequest, type ExchangeObserver } from './exchange.js';
import {
  clientAddress,
  connectionTokens,
  hostHeaderProblem,
  prepareRequestHeaders,
  responseHeaderLines,
} from './headers.js';
import { isReplayable, toOriginForm } from './request-target.js';
import { linkUpstreamAnswer, relayBody } from './response-relay.js';
import type { SlotAnswerSink } from './slot-pass.js';
import { SlotProxies, type SlotProxyHandlers } from './slot-proxies.js';
import { isTlsSocket, type EdgeFront } from './plain-front.js';
import type { Slot } from '../state/slot-state.js';
import {
  classifyUpstreamError,
  isStaleSocketError,
  UpstreamTimeoutError,
} from './upstream-errors.js';
import { UpstreamWarnings } from './upstream-warnings.js';

export interface ForwarderOptions extends EdgeContext {
  /** Compression, body limit, security headers, host names (edge-policy.ts). */
  policy: EdgePolicy;
  /** With TLS on: the plain listener's own answers and HSTS (null: forward everything). */
  front?: EdgeFront | null;
}

/**
 * The request pipeline of the public listener, on http-proxy-3: reads the
 * active slot once per request, rewrites headers (headers.ts), forwards with
 * the slot's keep-alive agent and streams both bodies, answers upstream
 * failures with 502/504 JSON, and accounts every exchange (inflight, metrics,
 * access log) when the client answer closes. Its handlers are created once
 * per proxy; per-request state lives on EdgeRequest.
 */
export class Forwarder extends EdgeHandler implements ExchangeObserver, SlotProxyHandlers {
  private readonly policy: EdgePolicy;
  private readonly errors: ErrorAnswers;
  /** Slot answer headers never copied (the security headers add Server to them). */
  private readonly droppedResponseHeaders: Readonly<Record<string, true>> | undefined;
  /** The http-proxy-3 servers requests go through. */
  private readonly slotProxies: SlotProxies;
  private readonly front: EdgeFront | null;
  private readonly warnings: UpstreamWarnings;

  constructor(options: ForwarderOptions) {
    super(options);
    this.warnings = new UpstreamWarnings(options.logger);
    this.policy = options.policy;
    this.errors = options.policy.errors;
    this.droppedResponseHeaders = options.policy.securityHeaders?.droppedResponseHeaders;
    this.slotProxies = new SlotProxies(options.upstreams, this);
    this.front = options.front ?? null;
  }

  /** http-proxy-3 options for `slot`, which WebSocket handshakes use too. */
  optionsFor(slot: Slot): ServerOptions {
    return this.slotProxies.optionsFor(slot);
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
      this.errors.send(res, 505, 'http_version_not_supported', slot, requestId);
      return;
    }
    const url = req.url;
    if (url === undefined || url.charCodeAt(0) !== 47 /* "/" */) {
      if (!toOriginForm(req)) {
        this.errors.send(res, 400, 'bad_request_target', slot, requestId);
        return;
      }
    }
    // Node's own check of a missing Host would answer before this handler, without X-Togather-Slot.
    const hostProblem = hostHeaderProblem(req);
    if (hostProblem !== null) {
      this.errors.send(res, 400, hostProblem, slot, requestId);
      return;
    }
    const { allowedHosts, bodyLimit } = this.policy;
    if (allowedHosts !== null && !allowedHosts.allows(req.headers.host, req.url!)) {
      this.errors.send(res, 421, 'misdirected_request', slot, requestId);
      return;
    }
    if (plain && front.redirect(req, res)) return;
    if (bodyLimit !== null && bodyLimit.declaresTooMuch(req)) {
      bodyLimit.refuse(req, res);
      return;
    }
    prepareRequestHeaders(req.headers, req.socket, {
      requestId,
      trustProxy: this.trustProxy,
      upgrade: false,
    });
    // Before the pass pipes the body, so the limit sees each chunk first.
    bodyLimit?.watch(req);
    this.forward(req, res);
  }

  /** Hands the request to http-proxy-3 for its slot. */
  private forward(req: EdgeRequest, res: EdgeResponse): void {
    this.slotProxies.web(req, res);
  }

  /** The exchange is over: the client answer was written in full or the client left. */
  finished(req: EdgeRequest, res: EdgeResponse): void {
    const upstream = req.upstream;
    if (upstream === null) return;
    upstream.end(req);
    const aborted = !res.writableFinished;
    // A body over MAX_BODY_SIZE counts as 413 even when it could only be cut.
    const status = req.bodyTooLarge ? 413 : aborted && !res.headersSent ? 499 : res.statusCode;
    const durationMs = performance.now() - req.startedAt;
    this.metrics.observeRequest(req.slot, req.method, status, durationMs / 1000);
    // The client left, or its body was refused: nothing may keep running on the slot for it.
    if (aborted || req.bodyTooLarge) req.cancelUpstream();
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
    // The proxy answers by itself (a refused body): the slot's answer was dropped on purpose.
    if (res.proxyAnswered) return;
    this.warnings.answerCut(req, this.metrics, false);
    res.destroy();
  }

  /**
   * 'checkContinue' (registered with MAX_BODY_SIZE): a body declared over
   * the limit is refused before the client is told to send it; any other
   * request gets its 100 Continue as Node would send it.
   */
  readonly onCheckContinue = (req: EdgeRequest, res: EdgeResponse): void => {
    const bodyLimit = this.policy.bodyLimit;
    if (bodyLimit === null || !bodyLimit.declaresTooMuch(req)) res.writeContinue();
    this.handle(req, res);
  };

  readonly onProxyReq = (proxyReq: ClientRequest, req: EdgeRequest): void => {
    req.proxyReq = proxyReq;
    // The slot's agent sets UPSTREAM_TIMEOUT on the socket; Node only reports it.
    proxyReq.on('timeout', onUpstreamTimeout);
  };

  /**
   * The slot answered through Node's pass (selfHandleResponse: http-proxy-3
   * leaves the answer to this handler instead of copying it header by
   * header): its head is staged (stageSlotHead) and its body relayed
   * (relayBody, or compressed).
   */
  readonly onProxyRes = (
    proxyRes: IncomingMessage,
    req: EdgeRequest,
    response: ServerResponse,
  ): void => {
    const res = response as EdgeResponse;
    if (res.proxyAnswered) return;
    linkUpstreamAnswer(proxyRes, res);
    const coding = this.stageSlotHead(
      req,
      res,
      proxyRes.statusCode ?? 502,
      proxyRes.statusMessage,
      proxyRes.headers,
    );
    if (coding !== null) {
      this.policy.compression!.relay(proxyRes, res, coding);
      return;
    }
    if (!res.writableEnded) relayBody(proxyRes, res);
  };

  /** The slot answered through the undici pool's pass (slot-pass.ts): staged the same way. */
  readonly slotAnswerStarted: SlotAnswerSink['slotAnswerStarted'] = (
    req,
    res,
    status,
    message,
    headers,
  ) => {
    if (res.proxyAnswered) return null;
    const coding = this.stageSlotHead(req, res, status, message, headers);
    return coding === null
      ? null
      : this.policy.compression!.encoderInto(res, coding, headers).encoder;
  };

  /**
   * Stages the slot's answer head on the client answer (either pass) in one
   * list, with the security headers and compression's edits. Returns the
   * coding the body is to be compressed with, null: relayed as it is.
   */
  private stageSlotHead(
    req: EdgeRequest,
    res: EdgeResponse,
    status: number,
    message: string | undefined,
    headers: IncomingHttpHeaders,
  ): ContentCoding | null {
    const dropped = connectionTokens(headers.connection);
    res.droppedTokens = dropped;
    if (res.headersSent) return null;
    const lines = responseHeaderLines(
      req.slot,
      req.requestId,
      headers,
      dropped,
      this.droppedResponseHeaders,
    );
    const coding = applyToSlotHead(this.policy, lines, req, status, headers);
    res.stageHead(status, message, lines);
    return coding;
  }

  readonly onError = (error: Error, req: EdgeRequest, target: ServerResponse | Socket): void => {
    // WebSocket handshakes fail with a socket here; websocket.ts answers those.
    if (!(target instanceof EdgeResponse)) return;
    const res = target;
    const upstream = req.upstream;
    // The proxy answered by itself (a refused body destroys the slot's request on purpose).
    if (upstream === null || res.writableEnded || res.proxyAnswered || req.bodyTooLarge) return;
    if (res.destroyed || req.socket.destroyed) {
      // The client left: not the slot's failure.
      req.cancelUpstream();
      return;
    }
    if (
      !req.retried &&
      !res.headersSent &&
      isStaleSocketError(error) &&
      // undici does not say whether the connection was a pooled one: its stale-socket failures retry once.
      (req.proxyReq?.reusedSocket === true || req.upstreamCall !== null) &&
      isReplayable(req)
    ) {
      // The slot closed a pooled keep-alive socket as we reused it; the request never reached it.
      req.retried = true;
      req.proxyReq = null;
      req.upstreamCall = null;
      this.forward(req, res);
      return;
    }
    const failure = classifyUpstreamError(error);
    req.upstreamError = failure.reason;
    this.metrics.countUpstreamError(req.slot, failure.reason);
    this.warnings.warn(req.slot, req.requestId, failure, error, false);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    this.errors.send(res, failure.status, failure.error, req.slot, req.requestId);
  };
}

function onResponseClose(this: EdgeResponse): void {
  const req = this.req;
  req.observer?.finished(req, this);
}

function onUpstreamTimeout(this: ClientRequest): void {
  this.destroy(new UpstreamTimeoutError('no answer from the slot within UPSTREAM_TIMEOUT'));
}
