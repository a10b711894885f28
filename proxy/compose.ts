import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { isLoopbackHost, urlOf } from '../common/listen-address.js';
import { createControlPlane, type ControlPlane } from './admin/control-plane.js';
import type { ProxyConfig } from './config.js';
import type { DataPlane, DataPlaneFactory } from './data-plane.js';
import { ProxyMetrics } from './metrics.js';
import { FileSlotStore } from './state/file-store.js';
import { RedisStore } from './state/redis-store.js';
import { loadRegistry } from './state/slot-registry.js';
import type { SlotStore } from './state/store.js';
import { tlsSettings } from './tls/edge-tls.js';
import { startTlsLayer, type TlsLayer } from './tls/tls-layer.js';

export interface ComposeOptions<P extends DataPlane> {
  logger: Logger;
  /** Health poll of both slots for /admin/status (default 5 s). */
  healthPollIntervalMs?: number | undefined;
  /** The public side: the edge in this process or the worker pool. */
  dataPlane: DataPlaneFactory<P>;
}

export interface ComposedProxy<P extends DataPlane> {
  /** The public listener, e.g. http://127.0.0.1:8080 */
  publicUrl: string;
  /** The TLS listener (HTTP/2 and HTTP/1.1), e.g. https://127.0.0.1:443; undefined without TLS. */
  tlsUrl: string | undefined;
  /** The admin listener, e.g. http://127.0.0.1:9080 */
  adminUrl: string;
  plane: P;
  control: ControlPlane;
  store: SlotStore;
  /**
   * Stops the admin listener while the data plane finishes what runs (up to
   * `timeoutMs`, default SHUTDOWN_TIMEOUT), then the certificate layer and
   * the store.
   */
  close(timeoutMs?: number): Promise<void>;
}

/** Redis for a fleet (REDIS_URL), else the state file (docs/architecture.md, Slot state). */
export function storeFor(config: ProxyConfig, logger: Logger): SlotStore {
  if (config.REDIS_URL) {
    return new RedisStore({ url: config.REDIS_URL, keyPrefix: config.REDIS_KEY_PREFIX, logger });
  }
  return new FileSlotStore({ stateFile: config.STATE_FILE, logger });
}

function warnIfAdminOffLoopback(config: ProxyConfig, logger: Logger): void {
  if (!isLoopbackHost(config.ADMIN_HOST)) {
    logger.warn(
      { admin_host: config.ADMIN_HOST },
      'the admin API listens off loopback (ADMIN_ALLOW_REMOTE): anyone who can reach it and guesses the key can move traffic; keep it on a private network',
    );
  }
}

/**
 * The composition root of `togather proxy`, one process or a cluster
 * primary alike: store → registry → certificate layer → data plane →
 * control plane, then the public side listens before the admin side.
 * Resolves once both listen. Throws StoreCorruptError / StoreUnavailableError
 * when the state cannot be loaded, TlsStartError, or the listen error when a
 * port is taken; nothing is left running then.
 */
export async function composeProxy<P extends DataPlane>(
  config: ProxyConfig,
  options: ComposeOptions<P>,
): Promise<ComposedProxy<P>> {
  const { logger } = options;
  warnIfAdminOffLoopback(config, logger);
  const store = storeFor(config, logger);
  let tls: TlsLayer | undefined;
  let plane: P | undefined;
  let control: ControlPlane | undefined;
  try {
    const registry = await loadRegistry(store, config.DEFAULT_SLOT, logger);
    const metrics = new ProxyMetrics(new Registry());
    metrics.attach({ registry });
    // togather_proxy_store_up is this process's: with workers the primary's alone
    // (aggregated `first`), as they have no store.
    metrics.setStoreUp(store.isUp());
    store.onAvailability((up) => metrics.setStoreUp(up));
    tls = await startTlsLayer({
      config,
      redis: config.REDIS_URL
        ? { url: config.REDIS_URL, keyPrefix: config.REDIS_KEY_PREFIX }
        : undefined,
      logger,
      registry: metrics.registry,
      // The data plane starts ordering once the plain listener answers the challenges.
      autoStart: false,
    });
    const layer = tls;
    const data = options.dataPlane({ config, store, registry, metrics, tls: layer, logger });
    plane = data;
    let tlsPort: number | null = null;
    control = createControlPlane({
      config,
      store,
      registry,
      traffic: () => data.traffic(),
      applied: data.applied,
      metrics: data.metrics,
      switches: metrics.switches,
      logger,
      healthPollIntervalMs: options.healthPollIntervalMs,
      tls: layer && (() => ({ ...tlsSettings(config, tlsPort), ...layer.status() })),
    });
    const listening = await data.listen();
    tlsPort = listening.tlsPort ?? null;
    const publicUrl = urlOf(listening);
    const tlsUrl =
      listening.tlsPort === undefined
        ? undefined
        : urlOf({ address: listening.address, port: listening.tlsPort }, 'https');
    const adminUrl = await control.listen();
    logger.info(
      {
        public: publicUrl,
        tls: tlsUrl ?? null,
        admin: adminUrl,
        store: `${store.kind} ${store.location}`,
        active: registry.current.active,
        epoch: registry.current.epoch,
        ...data.logFields?.(),
      },
      'togather proxy listening',
    );
    const admin = control;
    let closing: Promise<void> | undefined;
    return {
      publicUrl,
      tlsUrl,
      adminUrl,
      plane: data,
      control: admin,
      store,
      close(timeoutMs = config.SHUTDOWN_TIMEOUT) {
        closing ??= (async () => {
          // No switch may start once shutdown has begun; the public side drains.
          await Promise.all([
            admin.close().catch((error: unknown) => {
              logger.warn({ err: error }, 'admin listener did not close cleanly');
            }),
            data.close(timeoutMs),
          ]);
          await layer?.close();
          await store.close();
          logger.info('togather proxy stopped');
        })();
        return closing;
      },
    };
  } catch (error) {
    await control?.close().catch(() => undefined);
    await plane?.close(0).catch(() => undefined);
    await tls?.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw error;
  }
}
