import { IncomingMessage, ServerResponse } from 'node:http';
import {
  createSecureServer,
  type Http2SecureServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type Http2Session,
} from 'node:http2';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { SecureContext, Server as TlsServer, TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { TLS_POLICY } from './certificate-pair.js';
import type { CertificateSource } from './certificate-source.js';

/** What an HTTP/2 client may send in one header block. */
export interface Http2Limits {
  /** SETTINGS_MAX_HEADER_LIST_SIZE: bytes of one header list (names, values, 32 each). */
  maxHeaderListSize?: number;
  /** Header fields of one header list; a longer list gets RST_STREAM ENHANCE_YOUR_CALM. */
  maxHeaderListPairs?: number;
}

/** HTTP/1.1 settings of the listener, as the plain listener has them. */
export interface Http1Settings<Req extends typeof IncomingMessage> {
  IncomingMessage?: Req;
  ServerResponse?: typeof ServerResponse<InstanceType<Req>>;
  keepAliveTimeout?: number;
  headersTimeout?: number;
  requestTimeout?: number;
  maxHeaderSize?: number;
  /** 0: no count limit (the plain listener's choice: MAX_HEADER_SIZE bounds the block). */
  maxHeadersCount?: number;
}

export interface TlsListenerOptions<Req extends typeof IncomingMessage = typeof IncomingMessage> {
  source: CertificateSource;
  host: string;
  /** 0: any free port. */
  port: number;
  /** Every request, HTTP/1.1 (Req instances) and HTTP/2 (the http2 compatibility API). */
  onRequest: (
    req: InstanceType<Req> | Http2ServerRequest,
    res: ServerResponse<InstanceType<Req>> | Http2ServerResponse,
  ) => void;
  /** HTTP/1.1 upgrade requests (WebSockets); without it they are answered as requests. */
  onUpgrade?: (req: InstanceType<Req>, socket: Duplex, head: Buffer) => void;
  /** Offer `h2` by ALPN beside `http/1.1` (default true). */
  http2?: boolean;
  /** HTTP/2 limits beside the defaults below. */
  http2Limits?: Http2Limits;
  http1?: Http1Settings<Req>;
  /** Staples OCSP responses (an OcspStapler); none without it. */
  ocsp?: {
    handle: (
      certificate: Buffer,
      issuer: Buffer,
      done: (err: Error | null, response?: Buffer) => void,
    ) => void;
  };
  logger: Logger;
}

export interface TlsListener {
  readonly server: TlsServer;
  listen(): Promise<AddressInfo>;
  /**
   * Stops accepting, asks HTTP/2 sessions to finish (GOAWAY) and idle HTTP/1
   * connections to close, and cuts what is still open after timeoutMs.
   */
  close(timeoutMs: number): Promise<void>;
}

/** HTTP/2 streams one client may open at once (nginx allows 128). */
const MAX_CONCURRENT_STREAMS = 128;

/**
 * The TLS listener: Node's own TLS with TLS_POLICY, certificates by SNI from
 * the source (the default one for clients without SNI, updated on every
 * change of the source), ALPN `h2` + `http/1.1`. Replacing a certificate
 * touches only new handshakes; established connections keep theirs.
 */
export function createTlsListener<Req extends typeof IncomingMessage = typeof IncomingMessage>(
  options: TlsListenerOptions<Req>,
): TlsListener {
  const { source, logger } = options;
  const http1 = options.http1 ?? {};
  const SNICallback = (
    servername: string,
    done: (err: Error | null, ctx?: SecureContext) => void,
  ) => done(null, source.contextFor(servername) ?? source.defaultCertificate()?.context);
  const initial = source.defaultCertificate()?.pem;
  const tlsOptions = { ...TLS_POLICY, ...initial, SNICallback, noDelay: true };
  const limits = options.http2Limits ?? {};

  let server: TlsServer;
  const sessions = new Set<Http2Session>();
  let closing = false;
  if (options.http2 ?? true) {
    const h2: Http2SecureServer = createSecureServer(
      {
        ...tlsOptions,
        allowHTTP1: true,
        settings: {
          maxConcurrentStreams: MAX_CONCURRENT_STREAMS,
          // SETTINGS_ENABLE_CONNECT_PROTOCOL: WebSockets over HTTP/2 (RFC 8441).
          enableConnectProtocol: true,
          ...(limits.maxHeaderListSize === undefined
            ? {}
            : { maxHeaderListSize: limits.maxHeaderListSize }),
        },
        ...(limits.maxHeaderListPairs === undefined
          ? {}
          : { maxHeaderListPairs: limits.maxHeaderListPairs }),
        http1Options: {
          IncomingMessage: http1.IncomingMessage ?? IncomingMessage,
          ServerResponse: http1.ServerResponse ?? ServerResponse,
          keepAliveTimeout: http1.keepAliveTimeout,
        },
      },
      options.onRequest as Parameters<typeof createSecureServer>[1],
    );
    applyHttp1Limits(h2, http1);
    h2.on('session', (session: Http2Session) => {
      // A handshake that completed as close() began still gets its GOAWAY.
      if (closing) return session.close();
      sessions.add(session);
      session.once('close', () => sessions.delete(session));
    });
    h2.on('sessionError', (error: Error) => logger.debug({ err: error }, 'HTTP/2 session error'));
    server = h2;
  } else {
    const https = createHttpsServer(
      {
        ...tlsOptions,
        IncomingMessage: http1.IncomingMessage ?? IncomingMessage,
        ServerResponse: http1.ServerResponse ?? ServerResponse,
        keepAliveTimeout: http1.keepAliveTimeout,
        headersTimeout: http1.headersTimeout,
        requestTimeout: http1.requestTimeout,
        maxHeaderSize: http1.maxHeaderSize,
      },
      options.onRequest as Parameters<typeof createHttpsServer>[1],
    );
    if (http1.maxHeadersCount !== undefined) https.maxHeadersCount = http1.maxHeadersCount;
    server = https;
  }
  if (options.onUpgrade) server.on('upgrade', options.onUpgrade);
  if (options.ocsp) server.on('OCSPRequest', options.ocsp.handle);
  server.on('tlsClientError', (error: Error, socket: TLSSocket) => {
    logger.debug({ err: error.message, remote: socket.remoteAddress }, 'TLS handshake failed');
  });

  const sockets = new Set<Socket>();
  server.on('secureConnection', (socket: TLSSocket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  source.onChange(() => {
    // Clients without SNI get the server's own context: keep it current.
    const pem = source.defaultCertificate()?.pem;
    if (pem) server.setSecureContext({ ...TLS_POLICY, ...pem });
  });

  return {
    server,
    listen() {
      return new Promise<AddressInfo>((resolve, reject) => {
        server.once('error', reject);
        server.listen(options.port, options.host, () => {
          server.off('error', reject);
          const address = server.address() as AddressInfo;
          logger.info(
            { address: address.address, port: address.port, http2: options.http2 ?? true },
            'TLS listener listening',
          );
          resolve(address);
        });
      });
    },
    async close(timeoutMs) {
      closing = true;
      const closed = new Promise<void>((resolve) => {
        if (!server.listening) resolve();
        else server.close(() => resolve());
      });
      for (const session of sessions) session.close();
      const idle = server as { closeIdleConnections?: () => void };
      const poll = setInterval(() => idle.closeIdleConnections?.(), 50);
      idle.closeIdleConnections?.();
      let timer: NodeJS.Timeout | undefined;
      const cut = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
      await Promise.race([closed, cut]);
      clearTimeout(timer);
      clearInterval(poll);
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

/**
 * Http2SecureServer serves HTTP/1.1 with Node's http.Server machinery, which
 * reads these limits from the server object; its constructor has no option
 * for them.
 */
function applyHttp1Limits(
  server: Http2SecureServer,
  http1: Http1Settings<typeof IncomingMessage>,
): void {
  const target = server as Http2SecureServer & {
    headersTimeout: number;
    requestTimeout: number;
    maxHeaderSize?: number;
    maxHeadersCount?: number;
  };
  if (http1.headersTimeout !== undefined) target.headersTimeout = http1.headersTimeout;
  if (http1.requestTimeout !== undefined) target.requestTimeout = http1.requestTimeout;
  if (http1.maxHeaderSize !== undefined) target.maxHeaderSize = http1.maxHeaderSize;
  if (http1.maxHeadersCount !== undefined) target.maxHeadersCount = http1.maxHeadersCount;
}
