import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { createProxyServer } from 'http-proxy-3';
import type { Logger } from 'pino';
import { requestIdFrom } from '../../common/request-id.js';
import type { AccessLog, AccessRecord } from './access-log.js';
import { EdgeHandler, type EdgeContext } from './edge-handler.js';
import type { EdgePolicy } from './edge-policy.js';
import { EdgeResponse, type EdgeProxyServer, type EdgeRequest } from './exchange.js';
import type { Forwarder } from './forward.js';
import { clientAddress, hostHeaderProblem, prepareRequestHeaders } from './headers.js';
import type { ProxyMetrics } from '../metrics.js';
import type { Slot } from '../state/slot-state.js';
import { classifyUpstreamError, UpstreamTimeoutError } from './upstream-errors.js';
import type { Upstream, UpstreamWebSocket } from './upstream.js';
import { closeFrame, FrameBoundaryTracker } from './websocket-frames.js';

/** WebSocket close code 1001, "going away": the proxy is shutting down. */
export const WS_CLOSE_GOING_AWAY = 1001;

/** How long a close waits for the frame in progress to end before cutting the tunnel. */
const FRAME_END_GRACE_MS = 2000;
/** How long the client may take to answer a close frame before its side is destroyed. */
export const CLOSE_REPLY_GRACE_MS = 5000;

export interface WebSocketProxyOptions extends EdgeContext {
  forwarder: Forwarder;
  /** Host names and security headers apply to handshakes too. */
  policy: EdgePolicy;
}

/**
 * One WebSocket tunnelled to a slot: the client's side (an HTTP/1.1 socket,
 * or an HTTP/2 stream for RFC 8441, h2-websocket.ts), the upstream socket
 * and the frame boundaries of the slot-to-client direction, so that a drain
 * or a shutdown can end it with a real close frame instead of a cut.
 */
export class TunnelledWebSocket implements UpstreamWebSocket {
  upstreamSocket: Socket | null = null;
  proxyReq: ClientRequest | null = null;
  /** The handshake has been answered (by the slot or by the proxy). */
  answered = false;

  private readonly tracker = new FrameBoundaryTracker();
  private closeCode: number | null = null;
  private closeReason = '';
  /** Waiting for the frame in progress to end before sending our close frame. */
  private closingMidFrame = false;
  private ended = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    readonly requestId: string,
    readonly slot: Slot,
    readonly upstream: Upstream,
    readonly client: Duplex,
    readonly startedAt: number,
  ) {}

  upgraded(upstreamSocket: Socket): void {
    this.upstreamSocket = upstreamSocket;
  }

  /**
   * Called once the tunnel is piped (by http-proxy-3, or h2-websocket.ts): from then on this listener
   * sees every chunk the pipe writes to the client, in the same order. (Added
   * earlier, it would take the bytes that came with the 101 answer before
   * the pipe exists, and the client would never get them.)
   */
  tunnelOpen(): void {
    this.upstreamSocket?.on('data', this.onUpstreamData);
  }

  close(code: number, reason: string): void {
    if (this.closeCode !== null || this.ended) return;
    this.closeCode = code;
    this.closeReason = reason;
    const upstreamSocket = this.upstreamSocket;
    if (upstreamSocket === null) {
      // Still in the handshake: there is no WebSocket to close yet.
      this.proxyReq?.destroy();
      this.client.destroy();
      return;
    }
    upstreamSocket.unpipe(this.client);
    if (this.tracker.atBoundary) {
      this.sendClose();
      return;
    }
    this.closingMidFrame = true;
    upstreamSocket.resume();
    this.timer = setTimeout(() => this.cut(), FRAME_END_GRACE_MS);
    this.timer.unref();
  }

  /** The client socket closed: the WebSocket is over, whoever ended it. */
  clientClosed(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.upstreamSocket?.destroy();
    this.upstream.removeWebSocket(this);
  }

  private readonly onUpstreamData = (chunk: Buffer): void => {
    if (!this.closingMidFrame) {
      this.tracker.advance(chunk);
      return;
    }
    // The pipe is detached: pass on the rest of the frame in progress only.
    const end = this.tracker.advance(chunk, true);
    if (end > 0) this.client.write(end === chunk.length ? chunk : chunk.subarray(0, end));
    if (this.tracker.atBoundary) this.sendClose();
  };

  private sendClose(): void {
    this.closingMidFrame = false;
    if (this.timer !== null) clearTimeout(this.timer);
    const upstreamSocket = this.upstreamSocket;
    if (upstreamSocket !== null) {
      upstreamSocket.removeListener('data', this.onUpstreamData);
      this.client.unpipe(upstreamSocket);
      upstreamSocket.destroy();
    }
    this.client.end(closeFrame(this.closeCode ?? WS_CLOSE_GOING_AWAY, this.closeReason));
    // Read and drop the client's close reply so its end of the connection can finish.
    this.client.resume();
    this.timer = setTimeout(() => this.client.destroy(), CLOSE_REPLY_GRACE_MS);
    this.timer.unref();
  }

  private cut(): void {
    this.upstreamSocket?.destroy();
    this.client.destroy();
  }
}

/**
 * WebSocket upgrades on the public listener: the handshake goes to the
 * active slot (read once, like a request) through http-proxy-3 with that
 * slot's agent, the answer carries X-Togather-Slot, and the open tunnel is
 * tracked on the slot's Upstream, whose drain closes it with 1012.
 */
export class WebSocketProxy extends EdgeHandler {
  private readonly forwarder: Forwarder;
  private readonly proxy: EdgeProxyServer;
  private readonly logger: Logger;
  private readonly policy: EdgePolicy;
  private readonly tunnels = new WeakMap<IncomingMessage, TunnelledWebSocket>();
  private readonly byUpstreamSocket = new WeakMap<Socket, TunnelledWebSocket>();

  constructor(options: WebSocketProxyOptions) {
    super(options);
    this.forwarder = options.forwarder;
    // Its own http-proxy-3 server: handshakes take the library's ws passes, with the slot's options.
    this.proxy = createProxyServer<typeof EdgeRequest>({});
    this.logger = options.logger;
    this.policy = options.policy;
    this.proxy.on('proxyReqWs', this.onProxyReqWs);
    this.proxy.on('open', this.onOpen);
    this.proxy.on('error', this.onError);
  }

  /** The public listener's 'upgrade' handler. */
  readonly handleUpgrade = (req: EdgeRequest, stream: Duplex, head: Buffer): void => {
    // The public listener is a net-based http.Server: upgraded streams are net.Sockets.
    const socket = stream as Socket;
    const upstream = this.upstreams[this.registry.current.active];
    const slot = upstream.slot;
    const requestId = requestIdFrom(req.headers['x-request-id']);
    const startedAt = performance.now();

    const refusal = this.refusalOf(req);
    if (refusal !== null) {
      socket.on('error', ignoreError);
      socket.write(this.policy.errors.raw(refusal[0], refusal[1], slot, requestId));
      socket.destroySoon();
      this.record(req, slot, requestId, startedAt, refusal[0], null);
      return;
    }

    prepareRequestHeaders(req.headers, socket, {
      requestId,
      trustProxy: this.trustProxy,
      upgrade: true,
    });
    const tunnel = new TunnelledWebSocket(requestId, slot, upstream, socket, startedAt);
    this.tunnels.set(req, tunnel);
    upstream.addWebSocket(tunnel);
    socket.once('close', () => tunnel.clientClosed());
    this.proxy.ws(req, socket, head, this.forwarder.optionsFor(slot));
  };

  /** Closes every open WebSocket of both slots with `code` (proxy shutdown). */
  closeAll(code: number, reason: string): number {
    let closed = 0;
    for (const upstream of Object.values(this.upstreams)) {
      closed += upstream.closeWebSockets(code, reason);
    }
    return closed;
  }

  private refusalOf(req: EdgeRequest): [number, string] | null {
    if (this.lifecycle.closing) return [503, 'shutting_down'];
    if (req.method !== 'GET' || req.headers.upgrade?.toLowerCase() !== 'websocket') {
      return [400, 'unsupported_upgrade'];
    }
    if (req.url === undefined || req.url.charCodeAt(0) !== 47 /* "/" */) {
      return [400, 'bad_request_target'];
    }
    if (req.httpVersionMajor !== 1) return [505, 'http_version_not_supported'];
    const hostProblem = hostHeaderProblem(req);
    if (hostProblem !== null) return [400, hostProblem];
    const allowedHosts = this.policy.allowedHosts;
    if (allowedHosts !== null && !allowedHosts.allows(req.headers.host, req.url)) {
      return [421, 'misdirected_request'];
    }
    return null;
  }

  private readonly onProxyReqWs = (proxyReq: ClientRequest, req: EdgeRequest): void => {
    const tunnel = this.tunnels.get(req);
    if (tunnel === undefined) return;
    tunnel.proxyReq = proxyReq;
    // These listeners run before http-proxy-3's own, which write the answer to the client.
    proxyReq.on('timeout', () => {
      proxyReq.destroy(new UpstreamTimeoutError('no handshake answer within UPSTREAM_TIMEOUT'));
    });
    proxyReq.on('response', (proxyRes: IncomingMessage) => {
      // The slot refused the upgrade: http-proxy-3 relays its answer and closes.
      proxyRes.headers['x-togather-slot'] = tunnel.slot;
      proxyRes.headers['x-request-id'] = tunnel.requestId;
      proxyRes.headers.connection = 'close';
      this.policy.securityHeaders?.applyTo(proxyRes.headers);
      tunnel.answered = true;
      this.record(
        req,
        tunnel.slot,
        tunnel.requestId,
        tunnel.startedAt,
        proxyRes.statusCode ?? 502,
        null,
      );
    });
    proxyReq.on('upgrade', (proxyRes: IncomingMessage, upstreamSocket: Socket) => {
      proxyRes.headers['x-togather-slot'] = tunnel.slot;
      proxyRes.headers['x-request-id'] = tunnel.requestId;
      tunnel.answered = true;
      tunnel.upgraded(upstreamSocket);
      this.byUpstreamSocket.set(upstreamSocket, tunnel);
      this.record(req, tunnel.slot, tunnel.requestId, tunnel.startedAt, 101, null);
    });
  };

  private readonly onOpen = (upstreamSocket: Socket): void => {
    this.byUpstreamSocket.get(upstreamSocket)?.tunnelOpen();
  };

  private readonly onError = (
    error: Error,
    req: EdgeRequest,
    target: ServerResponse | Socket,
  ): void => {
    // Plain requests fail with a response object here; forward.ts answers those.
    if (target instanceof EdgeResponse) return;
    const tunnel = this.tunnels.get(req);
    if (tunnel === undefined) return;
    if (tunnel.answered) {
      // A side of an open tunnel went away; http-proxy-3 ends the other side.
      this.logger.debug(
        { slot: tunnel.slot, request_id: tunnel.requestId, error: error.message },
        'websocket tunnel error',
      );
      return;
    }
    tunnel.answered = true;
    const socket = target as Socket;
    if (socket.destroyed) return; // the client left during the handshake
    const failure = classifyUpstreamError(error);
    this.metrics.countUpstreamError(tunnel.slot, failure.reason);
    this.logger.warn(
      {
        slot: tunnel.slot,
        request_id: tunnel.requestId,
        reason: failure.reason,
        code: (error as NodeJS.ErrnoException).code,
        error: error.message,
      },
      'websocket handshake with the slot failed',
    );
    // http-proxy-3 ends the socket right after this handler.
    if (socket.writable) {
      socket.write(
        this.policy.errors.raw(failure.status, failure.error, tunnel.slot, tunnel.requestId),
      );
    }
    this.record(
      req,
      tunnel.slot,
      tunnel.requestId,
      tunnel.startedAt,
      failure.status,
      failure.reason,
    );
  };

  /** Metrics and access log for one handshake (its socket is the client's). */
  private record(
    req: EdgeRequest,
    slot: Slot,
    requestId: string,
    startedAt: number,
    status: number,
    upstreamError: string | null,
  ): void {
    recordHandshake(this.metrics, this.accessLog, {
      requestId,
      slot,
      method: req.method,
      url: req.url,
      remoteAddress: clientAddress(req.socket),
      status,
      durationMs: performance.now() - startedAt,
      bytes: 0,
      aborted: false,
      upstreamError,
    });
  }
}

/**
 * A WebSocket handshake (HTTP/1.1 or HTTP/2) is counted and logged once,
 * when it is answered: the tunnel's life after that is not a request's.
 */
export function recordHandshake(
  metrics: ProxyMetrics,
  accessLog: AccessLog | null,
  record: AccessRecord,
): void {
  metrics.countRequest(record.slot, record.method, record.status);
  accessLog?.write(record);
}

function ignoreError(): void {}
