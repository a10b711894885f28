import { Agent, type AgentOptions } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { Pool } from 'undici';
import type { Slot } from '../state/slot-state.js';

/** One HTTP exchange forwarded to a slot, as the slot's drain sees it. */
export interface UpstreamExchange {
  readonly requestId: string;
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  /** performance.now() when the request arrived. */
  readonly startedAt: number;
  /** Ends the upstream request with `error` (the client then gets an error answer or a cut). */
  abortUpstream(error: Error): void;
  /** The proxy is shutting down: the answer, if not started, closes its client connection. */
  endConnectionAfterAnswer(): void;
}

/** One WebSocket proxied to a slot. */
export interface UpstreamWebSocket {
  readonly requestId: string;
  /** Sends the client a close frame with `code` and tears the tunnel down. */
  close(code: number, reason: string): void;
}

export type DrainOutcome = 'drained' | 'timeout' | 'cancelled';

export interface DrainResult {
  slot: Slot;
  /**
   * `drained`: every request finished and every WebSocket ended by itself;
   * `timeout`: the drain timeout passed and what was left was cut;
   * `cancelled`: the slot became active again before the drain ended.
   */
  result: DrainOutcome;
  waited_ms: number;
  aborted_requests: number;
  closed_websockets: number;
}

/** Raised on requests still running on a slot when its drain timeout passes. */
export class DrainAbortError extends Error {
  override name = 'DrainAbortError';
  readonly code = 'EDRAINTIMEOUT';
}

/** WebSocket close code 1012, "service restart": clients reconnect (to the new slot). */
export const WS_CLOSE_SERVICE_RESTART = 1012;

export interface UpstreamOptions {
  slot: Slot;
  /** BLUE_URL or GREEN_URL. */
  url: string;
  /**
   * Socket inactivity limit in ms (UPSTREAM_TIMEOUT). It is the agent's
   * socket timeout, so it covers connecting, waiting for the answer and gaps
   * in a streamed answer; idle pooled sockets are also closed after it (or
   * earlier, when the slot announces a shorter Keep-Alive timeout).
   */
  timeoutMs: number;
  logger: Logger;
  /** Idle keep-alive sockets kept per slot. */
  maxFreeSockets?: number;
  /**
   * PEM certificates an https slot's certificate must chain to
   * (UPSTREAM_CA_FILE); unset: Node's default roots. Certificates are
   * always checked.
   */
  ca?: string | undefined;
}

interface DrainRun {
  readonly startedAt: number;
  readonly promise: Promise<DrainResult>;
  readonly resolve: (result: DrainResult) => void;
  timer: NodeJS.Timeout | null;
  /** No HTTP request left; idle sockets closed. */
  httpSettled: boolean;
  abortedRequests: number;
  closedWebSockets: number;
  outcome: DrainOutcome | null;
}

/**
 * One slot as the data plane sees it: where it is, its own keep-alive socket
 * pool (so draining one slot never touches the other's connections), the
 * requests and WebSockets running on it, and its drain.
 */
export class Upstream {
  readonly slot: Slot;
  /** As configured (may hold credentials: never log it as is). */
  readonly url: string;
  readonly target: URL;
  /**
   * An https.Agent (itself an http.Agent) for an https slot URL. It carries
   * WebSocket handshakes, and the requests of a slot the pool does not serve.
   */
  readonly agent: Agent;

  /**
   * The undici pool that carries the HTTP requests of an http slot URL
   * without a path (slot-pass.ts); null for the others (https, a path
   * prefix), which go through `agent`. Replaced by a fresh one when idle
   * connections are closed (a drain): the old one closes each connection
   * as its request ends.
   */
  private slotPool: Pool | null;
  private readonly timeoutMs: number;
  private readonly exchanges = new Set<UpstreamExchange>();
  private readonly websockets = new Set<UpstreamWebSocket>();
  private readonly logger: Logger;
  private run: DrainRun | null = null;

  constructor(options: UpstreamOptions) {
    this.slot = options.slot;
    this.url = options.url;
    this.target = new URL(options.url);
    this.logger = options.logger;
    this.timeoutMs = options.timeoutMs;
    this.slotPool = servedByPool(this.target) ? this.newPool() : null;
    const pool: AgentOptions = {
      keepAlive: true,
      // TCP keep-alive probes on pooled sockets find dead peers.
      keepAliveMsecs: 1000,
      maxSockets: Infinity,
      maxFreeSockets: options.maxFreeSockets ?? 512,
      // Reuse the most recently used socket: the one least likely closed by the slot.
      scheduling: 'lifo',
      // Also makes Node honour the slot's `Keep-Alive: timeout=N` hint (it
      // only lowers a non-zero agent timeout), so a pooled socket is retired
      // before the slot closes it.
      timeout: options.timeoutMs,
    };
    this.agent =
      this.target.protocol === 'https:'
        ? new HttpsAgent({
            ...pool,
            // An agent's options take precedence over a request's: this is
            // the trust of every request and WebSocket handshake to the slot.
            rejectUnauthorized: true,
            ...(options.ca === undefined ? {} : { ca: options.ca }),
          })
        : new Agent(pool);
  }

  /** The pool for this slot's HTTP requests; null when they go through `agent`. */
  get pool(): Pool | null {
    return this.slotPool;
  }

  private newPool(): Pool {
    const timeout = this.timeoutMs;
    // undici takes 0 as "no limit" for its request timeouts, as Node's agent does.
    const idle = timeout > 0 ? timeout : 60_000;
    return new Pool(this.target.origin, {
      // As many connections as requests in flight (the agent's maxSockets: Infinity).
      connections: null,
      pipelining: 1,
      // UPSTREAM_TIMEOUT covers connecting, waiting for the head and gaps in the body.
      connectTimeout: timeout,
      headersTimeout: timeout,
      bodyTimeout: timeout,
      // Idle pooled connections close after UPSTREAM_TIMEOUT, or earlier when
      // the slot announces a shorter Keep-Alive timeout (less a second).
      keepAliveTimeout: idle,
      keepAliveMaxTimeout: idle,
      keepAliveTimeoutThreshold: 1000,
      // TCP keep-alive probes on pooled connections find dead peers.
      connect: { keepAlive: true, keepAliveInitialDelay: 1000, noDelay: true },
    });
  }

  /** Requests forwarded to this slot and not finished. */
  get inflight(): number {
    return this.exchanges.size;
  }

  get openWebSockets(): number {
    return this.websockets.size;
  }

  /** A drain is running (the slot lost traffic and things are still finishing). */
  get draining(): boolean {
    return this.run !== null;
  }

  begin(exchange: UpstreamExchange): void {
    this.exchanges.add(exchange);
  }

  end(exchange: UpstreamExchange): void {
    if (!this.exchanges.delete(exchange)) return;
    if (this.run !== null && this.exchanges.size === 0) this.httpDrained(this.run);
  }

  addWebSocket(socket: UpstreamWebSocket): void {
    this.websockets.add(socket);
  }

  removeWebSocket(socket: UpstreamWebSocket): void {
    if (!this.websockets.delete(socket)) return;
    const run = this.run;
    if (run !== null && run.httpSettled && this.websockets.size === 0) this.finish(run, 'drained');
  }

  /**
   * Lets what runs on this slot finish. Resolves when no request is left and
   * every WebSocket has ended, or when `timeoutMs` passes: then requests still
   * running are aborted (each logged) and WebSockets get close code 1012.
   * Idle pooled sockets are closed as soon as no request is left. A drain
   * already running is returned as is.
   */
  drain(timeoutMs: number): Promise<DrainResult> {
    if (this.run !== null) return this.run.promise;
    let resolve!: (result: DrainResult) => void;
    const promise = new Promise<DrainResult>((r) => (resolve = r));
    const run: DrainRun = {
      startedAt: performance.now(),
      promise,
      resolve,
      timer: null,
      httpSettled: false,
      abortedRequests: 0,
      closedWebSockets: 0,
      outcome: null,
    };
    this.run = run;
    run.timer = setTimeout(() => this.timeOut(run), timeoutMs);
    // A drain must not keep a stopping process alive; close() cancels it anyway.
    run.timer.unref();
    if (this.exchanges.size === 0) this.httpDrained(run);
    return promise;
  }

  /** Stops a running drain without cutting anything (the slot is active again). */
  cancelDrain(): void {
    if (this.run !== null) this.finish(this.run, 'cancelled');
  }

  /** Closes this slot's idle pooled sockets; returns how many. */
  closeIdleSockets(): number {
    let closed = 0;
    const old = this.slotPool;
    if (old !== null) {
      // undici closes idle connections only by closing the pool: a fresh pool
      // takes the next requests, the old one ends each connection as its
      // request (if any) ends.
      closed += old.stats.free;
      this.slotPool = this.newPool();
      void old.close().catch(() => undefined);
    }
    for (const sockets of Object.values(this.agent.freeSockets)) {
      if (!sockets) continue;
      for (const socket of [...sockets]) {
        socket.destroy();
        closed++;
      }
    }
    return closed;
  }

  /** Closes every WebSocket on this slot with `code` (proxy shutdown). */
  closeWebSockets(code: number, reason: string): number {
    const sockets = [...this.websockets];
    for (const socket of sockets) socket.close(code, reason);
    return sockets.length;
  }

  /** Asks every running exchange to close its client connection after its answer (shutdown). */
  endConnectionsAfterAnswers(): void {
    for (const exchange of this.exchanges) exchange.endConnectionAfterAnswer();
  }

  /** Cancels a drain and closes every pooled socket (proxy shutdown, after traffic ended). */
  destroy(): void {
    this.cancelDrain();
    this.agent.destroy();
    void this.slotPool?.destroy().catch(() => undefined);
  }

  private httpDrained(run: DrainRun): void {
    if (run.httpSettled) return;
    run.httpSettled = true;
    // The socket of the last response returns to the pool on the next tick.
    setImmediate(() => {
      if (run.outcome !== 'cancelled') this.closeIdleSockets();
    });
    if (this.websockets.size === 0) this.finish(run, 'drained');
  }

  private timeOut(run: DrainRun): void {
    if (this.run !== run) return;
    const now = performance.now();
    for (const exchange of [...this.exchanges]) {
      run.abortedRequests++;
      this.logger.warn(
        {
          slot: this.slot,
          request_id: exchange.requestId,
          method: exchange.method,
          path: pathOf(exchange.url),
          age_ms: Math.round(now - exchange.startedAt),
        },
        'drain timeout: aborting a request still running on the old slot',
      );
      exchange.abortUpstream(new DrainAbortError(`slot ${this.slot} drain timeout`));
      // Whatever the abort leads to, the request no longer holds the drain.
      this.exchanges.delete(exchange);
    }
    run.httpSettled = true;
    this.closeIdleSockets();
    for (const socket of [...this.websockets]) {
      run.closedWebSockets++;
      socket.close(WS_CLOSE_SERVICE_RESTART, 'service restart');
      this.websockets.delete(socket);
    }
    if (run.closedWebSockets > 0) {
      this.logger.info(
        { slot: this.slot, websockets: run.closedWebSockets },
        'drain timeout: closed WebSockets on the old slot with 1012',
      );
    }
    this.finish(run, 'timeout');
  }

  private finish(run: DrainRun, result: DrainOutcome): void {
    if (this.run !== run) return;
    this.run = null;
    run.outcome = result;
    if (run.timer !== null) clearTimeout(run.timer);
    run.resolve({
      slot: this.slot,
      result,
      waited_ms: Math.round(performance.now() - run.startedAt),
      aborted_requests: run.abortedRequests,
      closed_websockets: run.closedWebSockets,
    });
  }
}

/**
 * Whether the pool serves a slot URL: plain http without a path or query.
 * https slots stay on Node's TLS (the certificate checks and their error
 * codes), and a path prefix on http-proxy-3's own `stream` pass.
 */
export function servedByPool(target: URL): boolean {
  return target.protocol === 'http:' && target.pathname === '/' && target.search === '';
}

/** The path of a request target without its query (queries may carry secrets). */
export function pathOf(url: string | undefined): string {
  if (url === undefined) return '';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}
