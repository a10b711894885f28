import type { Http2ServerRequest, Http2ServerResponse, Http2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { ProxyConfig } from '../config.js';
import type { EdgeHandlers, EdgeProxy } from '../edge/edge-proxy.js';
import { EdgeRequest, EdgeResponse } from '../edge/exchange.js';
import { Registry } from 'prom-client';
import type { AcmeRelay } from './acme-relay.js';
import { combineSources } from './certificate-source.js';
import type { ChallengeResponder } from './challenge-responder.js';
import { HttpsFront } from './https-front.js';
import { OcspStapler } from './ocsp-stapler.js';
import { createTlsListener, type TlsListener } from './tls-listener.js';
import { startTlsLayer, type TlsLayer, type TlsStatus } from './tls-layer.js';

/** What GET /admin/status shows under `tls` (null there without a certificate source). */
export interface EdgeTlsStatus extends TlsStatus {
  /** The TLS listener's port (null until it listens). */
  port: number | null;
  https_redirect: boolean;
  /** HSTS max-age in seconds, or null (HSTS=off). */
  hsts_max_age: number | null;
}

/**
 * What the TLS listener serves and the plain listener answers: the
 * certificate layer itself in one process, or in a cluster worker its file
 * sources beside the certificates and tokens the primary relays.
 */
export type ServedCertificates = Pick<TlsLayer, 'source' | 'ocsp' | 'start' | 'close'> & {
  challenges: ChallengeResponder | undefined;
};

/**
 * TLS for `togather proxy`: the certificates, the front the plain listener
 * consults (challenges, redirect, HSTS), and the TLS listener that serves
 * the same data plane over HTTP/2 and HTTP/1.1.
 */
export interface EdgeTls {
  readonly certificates: ServedCertificates;
  /** For createEdgeProxy. */
  readonly front: HttpsFront;
  /**
   * Starts the TLS listener on PROXY_HOST:PROXY_TLS_PORT serving `edge`
   * (which then drains it with its plain listener), then ACME's ordering:
   * call it once the plain listener listens, so challenges are answered.
   */
  listen(edge: EdgeProxy): Promise<AddressInfo>;
  /** Stops the certificates' work; the listener is closed by the edge's close(). */
  close(): Promise<void>;
}

/**
 * A cluster worker's TLS (PROXY_WORKERS > 1): its own file sources (read and
 * watched here; their metrics are the primary's, which reads the same
 * files), and with ACME_DOMAINS the certificates and tokens the primary
 * relays into `relay`: only the primary orders. Undefined without a source.
 */
export async function startWorkerTls(options: {
  config: ProxyConfig;
  logger: Logger;
  relay: AcmeRelay | undefined;
}): Promise<EdgeTls | undefined> {
  const { config, logger, relay } = options;
  const files = await startTlsLayer({
    config: { ...config, ACME_DOMAINS: [] },
    logger,
    registry: new Registry(),
    autoStart: false,
  });
  if (relay === undefined) {
    return files === undefined ? undefined : createEdgeTls(config, files, logger);
  }
  const source = combineSources(files === undefined ? [relay] : [relay, files.source]);
  const ocsp = new OcspStapler({ source, logger });
  return createEdgeTls(
    config,
    {
      source,
      ocsp,
      challenges: relay.challenges,
      start: () => undefined,
      async close() {
        await ocsp.close();
        await files?.close();
      },
    },
    logger,
  );
}

/** The front and the TLS listener over `certificates` (the certificate layer in one process). */
export function createEdgeTls(
  config: ProxyConfig,
  certificates: ServedCertificates,
  logger: Logger,
): EdgeTls {
  const redirect = config.HTTPS_REDIRECT ?? true;
  const front = new HttpsFront({
    challenges: certificates.challenges,
    redirect: redirect ? { exceptions: config.HTTPS_REDIRECT_EXCEPT } : null,
    hstsMaxAge: config.HSTS,
  });
  return {
    certificates,
    front,
    async listen(edge) {
      const listener = createEdgeTlsListener(config, certificates, edge.handlers, logger);
      const address = await listener.listen();
      front.setTlsPort(address.port);
      edge.serve(listener);
      certificates.start();
      return address;
    },
    close: () => certificates.close(),
  };
}

/** The settings /admin/status shows beside the certificates. */
export function tlsSettings(
  config: ProxyConfig,
  port: number | null,
): Pick<EdgeTlsStatus, 'port' | 'https_redirect' | 'hsts_max_age'> {
  return { port, https_redirect: config.HTTPS_REDIRECT ?? true, hsts_max_age: config.HSTS };
}

/** The TLS listener with the plain listener's limits, dispatching to the data plane's handlers. */
function createEdgeTlsListener(
  config: ProxyConfig,
  layer: ServedCertificates,
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
  // HTTP/1.1 with a body limit: the limit answers `Expect: 100-continue`
  // (HTTP/2 streams reach the handler and are limited there).
  const checkContinue = handlers.checkContinue;
  if (checkContinue !== null) {
    server.on(
      'checkContinue',
      (req: EdgeRequest | Http2ServerRequest, res: EdgeResponse | Http2ServerResponse) => {
        if (req instanceof EdgeRequest) checkContinue(req, res as EdgeResponse);
        else {
          res.writeContinue();
          handlers.http2Request(req, res as Http2ServerResponse);
        }
      },
    );
  }
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
