import { createServer, type Server } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { AccessLog } from './access-log.js';
import type { ProxyConfig } from '../config.js';
import { ClientRefusals } from './client-refusals.js';
import { SlotDrainer } from './drain.js';
import { edgePolicyFrom, type EdgePolicyConfig } from './edge-policy.js';
import { EdgeRequest, EdgeResponse } from './exchange.js';
import type { EdgeContext, Lifecycle } from './edge-handler.js';
import { Forwarder } from './forward.js';
import { Http2Forwarder } from './h2-forward.js';
import { StreamResetGuard } from './h2-reset-guard.js';
import type { EdgeFront } from './plain-front.js';
import type { ProxyMetrics } from '../metrics.js';
import type { SlotRegistry } from '../state/slot-registry.js';
import type { Slot, SlotState } from '../state/slot-state.js';
import { Upstream } from './upstream.js';
import { WebSocketProxy, WS_CLOSE_GOING_AWAY } from './websocket.js';

/** The configuration the data plane reads. */
export type EdgeProxyConfig = EdgePolicyConfig &
  Pick<
    ProxyConfig,
    | 'PROXY_HOST'
    | 'PROXY_PORT'
    | 'BLUE_URL'
    | 'GREEN_URL'
    | 'DRAIN_TIMEOUT'
    | 'UPSTREAM_TIMEOUT'
    | 'UPSTREAM_CA_FILE'
    | 'HEADERS_TIMEOUT'
    | 'REQUEST_TIMEOUT'
    | 'KEEP_ALIVE_TIMEOUT'
    | 'MAX_HEADER_SIZE'
    | 'MAX_CONNECTIONS'
    | 'SHUTDOWN_TIMEOUT'
    | 'TRUST_PROXY'
    | 'ACCESS_LOG'
  >;

export interface EdgeProxyOptions {
  config: EdgeProxyConfig;
  /** The slot state to follow, fed by the caller (loadRegistry); the data plane never reads a store. */
  registry: SlotRegistry;
  /** Where that state is kept, for the listening line. */
  storeKind: 'redis' | 'file';
  logger: Logger;
  metrics: ProxyMetrics;
  /** With TLS on: the plain listener's own answers (ACME challenges, redirect) and HSTS. */
  front?: EdgeFront | null;
}

/**
 * The data plane's handlers, for another public listener serving it (the
 * TLS listener: HTTP/1.1 requests and upgrades go to the same handlers as on
 * the plain listener, HTTP/2 streams to their own).
 */
export interface EdgeHandlers {
  request(req: EdgeRequest, res: EdgeResponse): void;
  upgrade(req: EdgeRequest, socket: Duplex, head: Buffer): void;
  clientError(error: NodeJS.ErrnoException, socket: Duplex): void;
  checkExpectation(req: EdgeRequest, res: EdgeResponse): void;
  /** With a body limit: `Expect: 100-continue` is answered by the limit (null: Node sends 100). */
  checkContinue: ((req: EdgeRequest, res: EdgeResponse) => void) | null;
  connect(req: EdgeRequest, socket: Duplex): void;
  http2Request(req: Http2ServerRequest, res: Http2ServerResponse): void;
  http2Expectation(req: Http2ServerRequest, res: Http2ServerResponse): void;
  /** A connection refused at MAX_CONNECTIONS. */
  dropped(): void;
}

/** Another public listener of the data plane, closed with the plain one. */
export interface ServedListener {
  /** Stops accepting, lets what runs finish, cuts what is left after timeoutMs. */
  close(timeoutMs: number): Promise<void>;
}

/**
 * What runs on one slot now: counted by the data plane, summed over the
 * workers by the cluster, shown by /admin/status.
 */
export interface SlotTraffic {
  /** The slot URL as configured (/admin/status shows it with its secrets hidden). */
  url: string;
  inflight: number;
  websockets: number;
  /** The slot lost traffic and still has requests or sockets finishing. */
  draining: boolean;
}

export interface EdgeProxy {
  /** The in-memory slot state the hot path reads (the one it was created with). */
  readonly registry: SlotRegistry;
  readonly upstreams: Readonly<Record<Slot, Upstream>>;
  /** The public listener (not listening until listen()). */
  readonly server: Server<typeof EdgeRequest, typeof EdgeResponse>;
  /** What runs on a slot now (its URL as configured: /admin/status redacts it). */
  traffic(slot: Slot): SlotTraffic;
  readonly handlers: EdgeHandlers;
  /**
   * Registers another listener serving these handlers: close() drains it
   * together with the plain listener, before the slots' pools are closed.
   */
  serve(listener: ServedListener): void;
  /** Starts the public listener on PROXY_HOST:PROXY_PORT (port 0: any free port). */
  listen(): Promise<AddressInfo>;
  /**
   * Stops accepting connections, lets requests in flight finish (their
   * answers carry Connection: close), closes WebSockets with 1001, and cuts
   * what is still open after `timeoutMs` (default SHUTDOWN_TIMEOUT). Does not
   * close the store.
   */
  close(timeoutMs?: number): Promise<void>;
}

/** How often idle keep-alive connections are closed while shutting down. */
const SHUTDOWN_POLL_MS = 50;

/** Streams an HTTP/2 connection may abandon at once, then per second (StreamResetGuard). */
const HTTP2_RESET_BURST = 100;
const HTTP2_RESETS_PER_SECOND = 10;

/**
 * The data plane: forwards the public listener's requests and WebSockets to
 * the registry's active slot and drains the old slot on every switch.
 */
export function createEdgeProxy(options: EdgeProxyOptions): EdgeProxy {
  const { config, registry, logger, metrics } = options;
  const front = options.front ?? null;
  const upstreams: Readonly<Record<Slot, Upstream>> = {
    blue: new Upstream({
      slot: 'blue',
      url: config.BLUE_URL,
      timeoutMs: config.UPSTREAM_TIMEOUT,
      ca: config.UPSTREAM_CA_FILE?.pem,
      logger,
    }),
    green: new Upstream({
      slot: 'green',
      url: config.GREEN_URL,
      timeoutMs: config.UPSTREAM_TIMEOUT,
      ca: config.UPSTREAM_CA_FILE?.pem,
      logger,
    }),
  };

  metrics.attach({ registry, upstreams });

  const drainer = new SlotDrainer({ upstreams, drainTimeoutMs: config.DRAIN_TIMEOUT });
  registry.onChange((next, previous) => onSwitch(next, previous));

  function onSwitch(next: SlotState, previous: SlotState): void {
    const fields = {
      actor: next.actor,
      from: previous.active,
      to: next.active,
      epoch: next.epoch,
    };
    const drain = drainer.onChange(next, previous);
    if (drain === null) {
      logger.info({ ...fields, drain: null }, 'slot state applied (active slot unchanged)');
      return;
    }
    logger.debug(fields, 'slot switched; draining the old slot');
    void drain.then((result) => logger.info({ ...fields, drain: result }, 'slot switched'));
  }

  const lifecycle: Lifecycle = { closing: false };
  const accessLog = config.ACCESS_LOG ? new AccessLog(logger) : null;
  const policy = edgePolicyFrom(config);
  const context: EdgeContext = {
    registry,
    upstreams,
    metrics,
    accessLog,
    logger,
    trustProxy: config.TRUST_PROXY,
    lifecycle,
  };
  const forwarder = new Forwarder({ ...context, policy, front });
  const http2 = new Http2Forwarder({
    ...context,
    hsts: front?.hsts ?? null,
    maxHeaderSize: config.MAX_HEADER_SIZE,
    policy,
    resets: new StreamResetGuard({
      burst: HTTP2_RESET_BURST,
      perSecond: HTTP2_RESETS_PER_SECOND,
      logger,
    }),
  });
  const websockets = new WebSocketProxy({ ...context, forwarder, policy });

  const server = createServer<typeof EdgeRequest, typeof EdgeResponse>(
    {
      IncomingMessage: EdgeRequest,
      ServerResponse: EdgeResponse,
      maxHeaderSize: config.MAX_HEADER_SIZE,
      headersTimeout: config.HEADERS_TIMEOUT,
      requestTimeout: config.REQUEST_TIMEOUT,
      keepAliveTimeout: config.KEEP_ALIVE_TIMEOUT,
      // Node's default (30 s) would let the header and request timeouts overshoot by as much.
      connectionsCheckingInterval: checkingInterval(config),
      // Checked by the forwarder, whose answer carries X-Togather-Slot.
      requireHostHeader: false,
      noDelay: true,
    },
    forwarder.handle,
  );
  server.keepAliveTimeout = config.KEEP_ALIVE_TIMEOUT;
  // Node drops header lines beyond maxHeadersCount (2000) from req.headers while
  // its parser still frames the body by them: a Content-Length past the 2000th
  // line would not be forwarded and the body would reach the slot unframed, as
  // requests of its own. MAX_HEADER_SIZE bounds the header block instead.
  server.maxHeadersCount = 0;
  if (config.MAX_CONNECTIONS > 0) server.maxConnections = config.MAX_CONNECTIONS;
  server.on('upgrade', websockets.handleUpgrade);
  const refusals = new ClientRefusals({ ...context, errors: policy.errors });
  server.on('clientError', refusals.onClientError);
  server.on('checkExpectation', refusals.onCheckExpectation);
  // Without a body limit Node sends 100 Continue itself.
  if (policy.bodyLimit !== null) server.on('checkContinue', forwarder.onCheckContinue);
  server.on('connect', refusals.onConnect);
  server.on('drop', () => metrics.countDroppedConnection());

  // Every client connection, upgraded ones included, so shutdown can end them all.
  const connections = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
  });

  const served = new Set<ServedListener>();
  const handlers: EdgeHandlers = {
    request: forwarder.handle,
    upgrade: websockets.handleUpgrade,
    clientError: refusals.onClientError,
    checkExpectation: refusals.onCheckExpectation,
    checkContinue: policy.bodyLimit !== null ? forwarder.onCheckContinue : null,
    connect: refusals.onConnect,
    http2Request: http2.handle,
    http2Expectation: http2.refuseExpectation,
    dropped: () => metrics.countDroppedConnection(),
  };

  let closing: Promise<void> | null = null;

  async function shutDown(timeoutMs: number): Promise<void> {
    lifecycle.closing = true;
    for (const upstream of Object.values(upstreams)) upstream.endConnectionsAfterAnswers();
    const closedWebSockets = websockets.closeAll(WS_CLOSE_GOING_AWAY, 'proxy shutting down');
    const wasListening = server.listening;
    const closed = new Promise<void>((resolve) => {
      if (!wasListening) resolve();
      else server.close(() => resolve());
    });
    const poll = setInterval(() => server.closeIdleConnections(), SHUTDOWN_POLL_MS);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), timeoutMs);
    });
    // The other listeners (TLS) drain alongside and cut at the same timeout themselves.
    const others = Promise.all(
      [...served].map((listener) =>
        listener.close(timeoutMs).catch((error: unknown) => {
          logger.warn({ err: error }, 'a public listener did not close cleanly');
        }),
      ),
    );
    const cut = await Promise.race([closed.then(() => false), timedOut]);
    clearTimeout(timer);
    let cutConnections = 0;
    if (cut) {
      cutConnections = connections.size;
      server.closeAllConnections();
      for (const socket of connections) socket.destroy();
      await closed;
    }
    clearInterval(poll);
    await others;
    for (const upstream of Object.values(upstreams)) upstream.destroy();
    logger.info(
      { closed_websockets: closedWebSockets, cut_connections: cutConnections },
      'edge proxy closed',
    );
  }

  return {
    registry,
    upstreams,
    server,
    traffic(slot) {
      const upstream = upstreams[slot];
      return {
        // As configured: /admin/status redacts it (redactSlotUrl), for workers' reports too.
        url: upstream.url,
        inflight: upstream.inflight,
        websockets: upstream.openWebSockets,
        draining: upstream.draining,
      };
    },
    handlers,
    serve(listener) {
      served.add(listener);
    },
    listen() {
      return new Promise<AddressInfo>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.PROXY_PORT, config.PROXY_HOST, () => {
          server.off('error', reject);
          const address = server.address() as AddressInfo;
          logger.info(
            {
              address: address.address,
              port: address.port,
              active: registry.current.active,
              epoch: registry.current.epoch,
              store: options.storeKind,
            },
            'edge proxy listening',
          );
          resolve(address);
        });
      });
    },
    close(timeoutMs = config.SHUTDOWN_TIMEOUT) {
      closing ??= shutDown(timeoutMs);
      return closing;
    },
  };
}

function checkingInterval(config: EdgeProxyConfig): number {
  const limits = [config.HEADERS_TIMEOUT, config.REQUEST_TIMEOUT].filter((ms) => ms > 0);
  const shortest = limits.length > 0 ? Math.min(...limits) : 30_000;
  return Math.min(1000, Math.max(50, Math.floor(shortest / 4)));
}
