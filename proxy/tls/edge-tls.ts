import type { Http2ServerRequest, Http2ServerResponse, Http2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ProxyConfig } from '../config.js';
import type { EdgeHandlers, EdgeProxy } from '../edge/edge-proxy.js';
import { EdgeRequest, EdgeResponse } from '../edge/exchange.js';
import { HttpsFront } from './https-front.js';
import { createTlsListener, type TlsListener } from './tls-listener.js';
import { startTlsLayer, type TlsLayer, type TlsLayerOptions, type TlsStatus } from './tls-layer.js';

/** What GET /admin/status shows under `tls` (null there without a certificate source). */
export interface EdgeTlsStatus extends TlsStatus {
  /** The TLS listener's port (null until it listens). */
  port: number | null;
  https_redirect: boolean;
  /** HSTS max-age in seconds, or null (HSTS=off). */
  hsts_max_age: number | null;
}

export interface EdgeTlsOptions {
  config: ProxyConfig;
  logger: Logger;
  /** The admin listener's registry: the certificate metrics go there. */
  registry: Registry;
  /** Timings for tests. */
  tuning?: TlsLayerOptions['tuning'];
}

/**
 * TLS for `togather proxy`: the certificate layer, the front the plain
 * listener consults (challenges, redirect, HSTS), and the TLS listener that
 * serves the same data plane over HTTP/2 and HTTP/1.1.
 */
export interface EdgeTls {
  readonly layer: TlsLayer;
  /** For createEdgeProxy. */
  readonly front: HttpsFront;
  status(): EdgeTlsStatus;
  /**
   * Starts the TLS listener on PROXY_HOST:PROXY_TLS_PORT serving `edge`
   * (which then drains it with its plain listener), then ACME's ordering:
   * call it once the plain listener listens, so challenges are answered.
   * Returns the listener's URL.
   */
  listen(edge: EdgeProxy): Promise<string>;
  /** Stops the certificate layer; the listener is closed by the edge's close(). */
  close(): Promise<void>;
}

/**
 * Starts the certificate layer when the configuration sets a source
 * (TLS_CERT_FILE, TLS_CERT_DIR, ACME_DOMAINS); undefined otherwise. Throws
 * TlsStartError naming the variable when a source cannot start.
 */
export async function startEdgeTls(options: EdgeTlsOptions): Promise<EdgeTls | undefined> {
  const { config, logger } = options;
  const layer = await startTlsLayer({
    config,
    redis: config.REDIS_URL
      ? { url: config.REDIS_URL, keyPrefix: config.REDIS_KEY_PREFIX }
      : undefined,
    logger,
    registry: options.registry,
    autoStart: false,
    tuning: options.tuning,
  });
  if (layer === undefined) return undefined;
  const redirect = config.HTTPS_REDIRECT ?? true;
  const front = new HttpsFront({
    challenges: layer.challenges,
    redirect: redirect ? { exceptions: config.HTTPS_REDIRECT_EXCEPT } : null,
    hstsMaxAge: config.HSTS,
  });
  let listener: TlsListener | undefined;
  let port: number | null = null;
  return {
    layer,
    front,
    status: () => ({
      port,
      https_redirect: redirect,
      hsts_max_age: config.HSTS,
      ...layer.status(),
    }),
    async listen(edge) {
      listener = createEdgeTlsListener(config, layer, edge.handlers, logger);
      const address = await listener.listen();
      port = address.port;
      front.setTlsPort(address.port);
      edge.serve(listener);
      layer.start();
      return httpsUrlOf(address);
    },
    close: () => layer.close(),
  };
}

/** The TLS listener with the plain listener's limits, dispatching to the data plane's handlers. */
function createEdgeTlsListener(
  config: ProxyConfig,
  layer: TlsLayer,
  handlers: EdgeHandlers,
  logger: Logger,
): TlsListener {
  const listener = createTlsListener<typeof EdgeRequest>({
    source: layer.source,
    host: config.PROXY_HOST,
    port: config.PROXY_TLS_PORT,
    logger,
    ocsp: layer.ocsp,
    onRequest: (req, res) => {
      if (req instanceof EdgeRequest) handlers.request(req, res as EdgeResponse);
      else handlers.http2Request(req, res as Http2ServerResponse);
    },
    onUpgrade: handlers.upgrade,
    http1: {
      IncomingMessage: EdgeRequest,
      ServerResponse: EdgeResponse,
      keepAliveTimeout: config.KEEP_ALIVE_TIMEOUT,
      headersTimeout: config.HEADERS_TIMEOUT,
      requestTimeout: config.REQUEST_TIMEOUT,
      maxHeaderSize: config.MAX_HEADER_SIZE,
      // As on the plain listener: MAX_HEADER_SIZE bounds the block (see edge-proxy.ts).
      maxHeadersCount: 0,
    },
    http2Limits: {
      maxHeaderListSize: config.MAX_HEADER_SIZE,
      // Node's default (128) counts every cookie crumb; the size above is the real bound.
      maxHeaderListPairs: 256,
    },
  });
  const server = listener.server;
  if (config.MAX_CONNECTIONS > 0) server.maxConnections = config.MAX_CONNECTIONS;
  server.on('drop', handlers.dropped);
  // HTTP/1.1 over TLS: the same refusals as the plain listener.
  server.on('clientError', handlers.clientError);
  // Both protocols emit these, with HTTP/2's compatibility objects or HTTP/1.1's.
  server.on(
    'checkExpectation',
    (req: EdgeRequest | Http2ServerRequest, res: EdgeResponse | Http2ServerResponse) => {
      if (req instanceof EdgeRequest) handlers.checkExpectation(req, res as EdgeResponse);
      else handlers.http2Expectation(req, res as Http2ServerResponse);
    },
  );
  server.on(
    'connect',
    (req: EdgeRequest | Http2ServerRequest, target: Duplex | Http2ServerResponse) => {
      if (req instanceof EdgeRequest) handlers.connect(req, target as Duplex);
      else handlers.http2Request(req, target as Http2ServerResponse);
    },
  );
  // An idle HTTP/2 connection is closed like an idle keep-alive one (GOAWAY, streams finish).
  server.on('session', (session: Http2Session) => {
    session.setTimeout(config.KEEP_ALIVE_TIMEOUT, () => session.close());
  });
  return listener;
}

function httpsUrlOf(address: AddressInfo): string {
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `https://${host}:${address.port}`;
}
