import { randomBytes } from 'node:crypto';
import type { OutgoingHttpHeaders } from 'node:http';
import { constants as h2, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { AccessLog } from './access-log.js';
import type { H2Exchange } from './h2-exchange.js';
import type { ProxyMetrics } from '../metrics.js';
import { CLOSE_REPLY_GRACE_MS, recordHandshake, TunnelledWebSocket } from './websocket.js';

/**
 * RFC 8441 extended CONNECT: a WebSocket on an HTTP/2 stream (`:method
 * CONNECT`, `:protocol websocket`), bridged to the slot as an HTTP/1.1
 * WebSocket handshake (the slots stay HTTP/1.1). Until the slot answers, the
 * stream is an exchange like any other (h2-forward.ts: the same refusals,
 * 502/504 JSON, a slot's refusal relayed with the policy's headers); once
 * the slot answers 101, the stream gets 200 and carries the WebSocket's
 * bytes both ways as a TunnelledWebSocket on the slot's Upstream, exactly
 * as an HTTP/1.1 tunnel (websocket.ts): a switch lets it run until the drain
 * times out, then closes it with 1012 on a frame boundary; shutdown closes it
 * with 1001.
 */

/** The extended CONNECT protocol bridged (RFC 8441 §4; upgrade tokens are case-insensitive). */
export function isWebSocketProtocol(protocol: string): boolean {
  return protocol.toLowerCase() === 'websocket';
}

/**
 * Turns the headers prepared for the slot (forwarded headers, hop-by-hop
 * fields gone) into those of an HTTP/1.1 WebSocket handshake. The HTTP/2
 * client sends no Sec-WebSocket-Key (RFC 8441 §5): the proxy makes one for
 * the slot; the slot's Sec-WebSocket-Accept is not passed on.
 */
export function toWebSocketHandshake(headers: OutgoingHttpHeaders): void {
  headers.connection = 'Upgrade';
  headers.upgrade = 'websocket';
  headers['sec-websocket-key'] = randomBytes(16).toString('base64');
  delete headers['content-length'];
}

/** Never copied from the slot's 101 to the stream's 200: the HTTP/1.1 handshake's own proof. */
const HANDSHAKE_ONLY = { 'sec-websocket-accept': true } as const;

export interface H2WebSocketBridgeOptions {
  metrics: ProxyMetrics;
  accessLog: AccessLog | null;
  /** The slot answer headers the HTTP/2 forwarder never copies. */
  droppedResponseHeaders: Readonly<Record<string, true>>;
}

export class H2WebSocketBridge {
  /** Slot headers of a 101 never copied to the stream's 200. */
  readonly droppedFromAnswer: Readonly<Record<string, true>>;
  private readonly metrics: ProxyMetrics;
  private readonly accessLog: AccessLog | null;

  constructor(options: H2WebSocketBridgeOptions) {
    this.metrics = options.metrics;
    this.accessLog = options.accessLog;
    this.droppedFromAnswer = Object.assign(
      Object.create(null) as Record<string, true>,
      options.droppedResponseHeaders,
      HANDSHAKE_ONLY,
    );
  }

  /**
   * The stream has its 200: from now on it carries the WebSocket, tracked
   * on the slot's Upstream (its drain and shutdown close it), and the
   * handshake is counted and logged once, as on HTTP/1.1.
   */
  open(exchange: H2Exchange, socket: Socket, head: Buffer): void {
    const stream = exchange.req.stream;
    const tunnel = new TunnelledWebSocket(
      exchange.requestId,
      exchange.slot,
      exchange.upstream,
      stream,
      exchange.startedAt,
    );
    tunnel.proxyReq = exchange.proxyReq;
    tunnel.answered = true;
    tunnel.upgraded(socket);
    exchange.upstream.addWebSocket(tunnel);
    // UPSTREAM_TIMEOUT is for answers: an open WebSocket may be quiet for as long as it likes.
    socket.setTimeout(0);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 0);
    socket.on('error', ignoreError);
    stream.on('error', ignoreError);
    socket.once('close', () => onSlotSocketClose(stream));
    stream.once('close', () => tunnel.clientClosed());
    // Bytes the slot sent with its 101: read first, and seen by the frame tracker.
    if (head.length > 0) socket.unshift(head);
    socket.pipe(stream);
    stream.pipe(socket);
    tunnel.tunnelOpen();
    recordHandshake(this.metrics, this.accessLog, {
      requestId: exchange.requestId,
      slot: exchange.slot,
      method: exchange.method,
      url: exchange.url,
      remoteAddress: exchange.remoteAddress,
      status: 200,
      durationMs: performance.now() - exchange.startedAt,
      bytes: 0,
      aborted: false,
      upstreamError: null,
    });
  }
}

/**
 * The slot's socket closed. When the stream is still open for writing, the
 * tunnel broke: reset as HTTP/2 resets a broken CONNECT (RFC 9113 §8.5).
 * Else the WebSocket ended (the slot ended its side, or the proxy sent its
 * close frame): the client has CLOSE_REPLY_GRACE_MS to end its side too
 * before the stream is closed, so it cannot hold the slot's drain.
 */
function onSlotSocketClose(stream: ServerHttp2Stream): void {
  if (stream.destroyed) return;
  if (!stream.writableEnded) {
    stream.close(h2.NGHTTP2_CONNECT_ERROR);
    return;
  }
  setTimeout(closeStream, CLOSE_REPLY_GRACE_MS, stream).unref();
}

function closeStream(stream: ServerHttp2Stream): void {
  if (!stream.destroyed) stream.close(h2.NGHTTP2_NO_ERROR);
}

function ignoreError(): void {}
