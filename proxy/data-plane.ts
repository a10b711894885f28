import type { Logger } from 'pino';
import type { MetricsSource } from './admin/routes/operations.js';
import type { TrafficReport } from './admin/status.js';
import type { ProxyConfig } from './config.js';
import type { ProxyMetrics } from './metrics.js';
import type { SlotRegistry } from './state/slot-registry.js';
import type { SlotState } from './state/slot-state.js';
import type { SlotStore } from './state/store.js';
import type { TlsLayer } from './tls/tls-layer.js';

/** Where the public side accepts once it listens. */
export interface ListeningAddress {
  address: string;
  port: number;
  /** The TLS listener's port, when TLS is on. */
  tlsPort?: number | undefined;
}

/**
 * The public side of `togather proxy` as the composition root (compose.ts)
 * sees it: the edge in this process (main.ts), or the worker pool of
 * PROXY_WORKERS > 1 (cluster/primary.ts). The control plane asks it for
 * traffic and metrics; the root starts and stops it.
 */
export interface DataPlane {
  /** GET /metrics: this process's registry, or the workers' summed with the primary's. */
  readonly metrics: MetricsSource;
  /** Traffic per slot for /admin/status, and each worker when there are several. */
  traffic(): TrafficReport | Promise<TrafficReport>;
  /** After a switch is written and applied here, before the admin API answers (workers confirm). */
  applied?: ((state: SlotState) => Promise<void>) | undefined;
  /**
   * Starts accepting on PROXY_PORT (and PROXY_TLS_PORT with TLS), then the
   * certificate layer's ordering (the plain listener answers the challenges now).
   */
  listen(): Promise<ListeningAddress>;
  /** What the `togather proxy listening` line adds (the workers' pids). */
  logFields?: (() => Record<string, unknown>) | undefined;
  /** Stops accepting and lets what runs finish within `timeoutMs`; cuts the rest. */
  close(timeoutMs: number): Promise<void>;
}

/** What the composition root has built when it asks for the data plane. */
export interface DataPlaneParts {
  config: ProxyConfig;
  /** Initialised; its kind is what the data plane reports. Owned by the root. */
  store: SlotStore;
  /** Fed by the store: what the data plane serves and relays. */
  registry: SlotRegistry;
  metrics: ProxyMetrics;
  /** The certificate layer, not ordering yet (undefined without TLS). Owned by the root. */
  tls: TlsLayer | undefined;
  logger: Logger;
}

/** Builds the data plane (nothing listens yet). */
export type DataPlaneFactory<P extends DataPlane> = (parts: DataPlaneParts) => P;
