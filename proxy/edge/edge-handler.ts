import type { Logger } from 'pino';
import type { AccessLog } from './access-log.js';
import type { ProxyMetrics } from '../metrics.js';
import type { SlotRegistry } from '../state/slot-registry.js';
import type { Slot } from '../state/slot-state.js';
import type { Upstream } from './upstream.js';

/** Shared between the pipeline parts: flips once when the proxy starts shutting down. */
export interface Lifecycle {
  closing: boolean;
}

/**
 * What every handler of the public listeners is built from (the HTTP/1.1
 * and HTTP/2 forwarders, the WebSocket tunnels, the client refusals):
 * createEdgeProxy makes it once.
 */
export interface EdgeContext {
  registry: SlotRegistry;
  upstreams: Readonly<Record<Slot, Upstream>>;
  metrics: ProxyMetrics;
  /** null when ACCESS_LOG is off. */
  accessLog: AccessLog | null;
  logger: Logger;
  /** TRUST_PROXY: keep an incoming X-Forwarded-* chain instead of replacing it. */
  trustProxy: boolean;
  lifecycle: Lifecycle;
}

/**
 * The fields of EdgeContext a handler reads on its hot path, held on the
 * handler itself (the logger is each handler's to wrap as it logs).
 */
export abstract class EdgeHandler {
  protected readonly registry: SlotRegistry;
  protected readonly upstreams: Readonly<Record<Slot, Upstream>>;
  protected readonly metrics: ProxyMetrics;
  protected readonly accessLog: AccessLog | null;
  protected readonly trustProxy: boolean;
  protected readonly lifecycle: Lifecycle;

  protected constructor(context: EdgeContext) {
    this.registry = context.registry;
    this.upstreams = context.upstreams;
    this.metrics = context.metrics;
    this.accessLog = context.accessLog;
    this.trustProxy = context.trustProxy;
    this.lifecycle = context.lifecycle;
  }
}
