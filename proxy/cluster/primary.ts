import type { Cluster } from 'node:cluster';
import type { Logger } from 'pino';
import { Counter, Registry } from 'prom-client';
import { urlOf } from '../../common/listen-address.js';
import type { SlotTraffic, TrafficReport, WorkerStatus } from '../admin/status.js';
import { ClusterMetrics } from './metrics.js';
import type { ProxyConfig } from '../config.js';
import { createControlPlane, type ControlPlane } from '../admin/control-plane.js';
import { ProxyMetrics } from '../metrics.js';
import { SlotRegistry } from '../state/slot-registry.js';
import { SLOTS, type Slot } from '../../common/slot.js';
import type { SlotStore } from '../state/store.js';
import { WorkerPool, type WorkerAnswer } from './worker-pool.js';
import { acmeSnapshot } from '../tls/acme-relay.js';
import { tlsSettings } from '../tls/edge-tls.js';
import { startTlsLayer, type TlsLayer } from '../tls/tls-layer.js';

export interface ClusterProxyOptions {
  config: ProxyConfig;
  /** Not initialised yet; owned (and closed) by the cluster proxy. */
  store: SlotStore;
  logger: Logger;
  cluster: Cluster;
  /** The worker entry script (dist/proxy/cluster/worker-main.js). */
  workerScript: string;
  /** Health poll of both slots for /admin/status (default 5 s). */
  healthPollIntervalMs?: number;
}

export interface RunningCluster {
  /** The public listener every worker accepts on. */
  publicUrl: string;
  /** The TLS listener every worker accepts on; undefined without TLS. */
  tlsUrl: string | undefined;
  adminUrl: string;
  control: ControlPlane;
  pool: WorkerPool;
  store: SlotStore;
  /** Stops the admin listener, drains every worker (up to `timeoutMs`), closes the store. */
  close(timeoutMs?: number): Promise<void>;
}

/** How long the admin API waits for workers' answers (status, metrics, switch confirmation). */
const WORKER_ANSWER_TIMEOUT_MS = 2000;

/**
 * `togather proxy` with PROXY_WORKERS > 1, the primary process: it owns the
 * store (Redis or file: one connection, one writer), the slot registry, the
 * admin API and the health poll, and N workers (node:cluster) own the public
 * listener. Every state the primary learns (its own switches, the store's
 * notifications and reconcile reads) is relayed to every worker over IPC; a
 * switch through the admin API answers once every worker applies it. The
 * primary forwards no request: Node's cluster hands each new connection to a
 * worker (round-robin), and requests are served there.
 */
export async function startClusterProxy(options: ClusterProxyOptions): Promise<RunningCluster> {
  const { config, store, logger } = options;
  const state = await store.init(config.DEFAULT_SLOT);
  const registry = new SlotRegistry(state, logger);
  const metrics = new ProxyMetrics(new Registry());
  metrics.attach({ registry });
  metrics.setStoreUp(store.isUp());
  const restarts = new Counter({
    name: 'togather_proxy_worker_restarts_total',
    help: 'Proxy worker processes that died and were replaced (PROXY_WORKERS > 1).',
    registers: [metrics.registry],
  });

  // The certificate layer runs here for /admin/status, the metrics and ACME:
  // only this process orders; the workers get the certificates and tokens relayed.
  let tls: TlsLayer | undefined;
  const pool = new WorkerPool({
    cluster: options.cluster,
    size: config.PROXY_WORKERS,
    exec: options.workerScript,
    logger,
    start: () => ({
      state: registry.current,
      storeKind: store.kind,
      tls: acmeSnapshot(tls),
    }),
    onReplace: () => restarts.inc(),
    onExit: (workerId) => clusterMetrics.retire(workerId),
  });
  const clusterMetrics = new ClusterMetrics(metrics.registry, pool, WORKER_ANSWER_TIMEOUT_MS);
  store.onState((next) => registry.apply(next));
  // togather_proxy_store_up is the primary's alone (aggregated `first`): the workers have no store.
  store.onAvailability((up) => metrics.setStoreUp(up));
  registry.onChange((next, previous) => {
    logger.info(
      { actor: next.actor, from: previous.active, to: next.active, epoch: next.epoch },
      'slot state applied: relaying it to the workers',
    );
    pool.broadcastState(next);
  });

  let control: ControlPlane | undefined;
  try {
    tls = await startTlsLayer({
      config,
      redis: config.REDIS_URL
        ? { url: config.REDIS_URL, keyPrefix: config.REDIS_KEY_PREFIX }
        : undefined,
      logger,
      registry: metrics.registry,
      autoStart: false,
    });
    const layer = tls;
    const relay = () => {
      const snapshot = acmeSnapshot(layer);
      if (snapshot !== undefined) pool.broadcastTls(snapshot);
    };
    layer?.acme?.onChange(relay);
    layer?.challenges?.onChange(relay);
    const listening = await pool.start();
    // Every worker answers the challenges now.
    layer?.start();
    control = createControlPlane({
      config,
      store,
      registry,
      traffic: async () =>
        trafficReport(config, await pool.ask('traffic', WORKER_ANSWER_TIMEOUT_MS), pool),
      metrics: clusterMetrics,
      switches: metrics.switches,
      logger,
      healthPollIntervalMs: options.healthPollIntervalMs,
      tls:
        layer && (() => ({ ...tlsSettings(config, listening.tlsPort ?? null), ...layer.status() })),
      applied: async (next) => {
        const lagging = await pool.converged(next.epoch, WORKER_ANSWER_TIMEOUT_MS);
        if (lagging.length > 0) {
          logger.warn(
            { epoch: next.epoch, workers: lagging },
            `not every worker confirmed the switch within ${WORKER_ANSWER_TIMEOUT_MS} ms`,
          );
        }
      },
    });
    const adminUrl = await control.listen();
    const publicUrl = urlOf(listening);
    const tlsUrl =
      listening.tlsPort === undefined
        ? undefined
        : urlOf({ address: listening.address, port: listening.tlsPort }, 'https');
    logger.info(
      {
        public: publicUrl,
        tls: tlsUrl ?? null,
        admin: adminUrl,
        store: `${store.kind} ${store.location}`,
        active: registry.current.active,
        epoch: registry.current.epoch,
        workers: pool.views().map((w) => w.pid),
      },
      'togather proxy listening',
    );
    const running = control;
    let closing: Promise<void> | undefined;
    return {
      publicUrl,
      tlsUrl,
      adminUrl,
      control: running,
      pool,
      store,
      close(timeoutMs = config.SHUTDOWN_TIMEOUT) {
        closing ??= (async () => {
          // No switch may start once shutdown has begun; the workers drain.
          await Promise.all([
            running.close().catch((error: unknown) => {
              logger.warn({ err: error }, 'admin listener did not close cleanly');
            }),
            pool.stop(timeoutMs),
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
    await pool.stop(0);
    await tls?.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw error;
  }
}

/** Sums the workers' answers per slot; a worker that did not answer is listed, not counted. */
function trafficReport(
  config: ProxyConfig,
  answers: WorkerAnswer[],
  pool: WorkerPool,
): TrafficReport {
  const urls: Record<Slot, string> = { blue: config.BLUE_URL, green: config.GREEN_URL };
  const slots = {} as Record<Slot, SlotTraffic>;
  for (const slot of SLOTS) {
    slots[slot] = { url: urls[slot], inflight: 0, websockets: 0, draining: false };
  }
  const byId = new Map(answers.map((a) => [a.worker.id, a.answer?.traffic]));
  const workers: WorkerStatus[] = pool.views().map((worker) => {
    const traffic = byId.get(worker.id);
    if (traffic === undefined) {
      return {
        ...worker,
        responding: false,
        active: null,
        inflight: null,
        websockets: null,
        draining: [],
      };
    }
    for (const slot of SLOTS) {
      const mine = traffic.slots[slot];
      slots[slot].inflight += mine.inflight;
      slots[slot].websockets += mine.websockets;
      slots[slot].draining ||= mine.draining;
    }
    return {
      ...worker,
      pid: traffic.pid,
      responding: true,
      epoch: Math.max(worker.epoch, traffic.epoch),
      active: traffic.active,
      inflight: { blue: traffic.slots.blue.inflight, green: traffic.slots.green.inflight },
      websockets: { blue: traffic.slots.blue.websockets, green: traffic.slots.green.websockets },
      draining: SLOTS.filter((slot) => traffic.slots[slot].draining),
    };
  });
  return { slots, workers };
}
