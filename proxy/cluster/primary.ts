import type { Cluster } from 'node:cluster';
import type { Logger } from 'pino';
import { Counter } from 'prom-client';
import type { TrafficReport, WorkerStatus } from '../admin/status.js';
import { SLOTS, type Slot } from '../../common/slot.js';
import { composeProxy, type ComposedProxy } from '../compose.js';
import type { ProxyConfig } from '../config.js';
import type { DataPlane, DataPlaneParts } from '../data-plane.js';
import type { SlotTraffic } from '../edge/edge-proxy.js';
import { acmeSnapshot } from '../tls/acme-relay.js';
import { ClusterMetrics } from './metrics.js';
import { WorkerPool, type WorkerAnswer } from './worker-pool.js';

export interface ClusterProxyOptions {
  logger: Logger;
  cluster: Cluster;
  /** The worker entry script (dist/proxy/cluster/worker-main.js). */
  workerScript: string;
  /** Health poll of both slots for /admin/status (default 5 s). */
  healthPollIntervalMs?: number;
}

/** The data plane of PROXY_WORKERS > 1: the workers, seen from the primary. */
export interface WorkerPoolPlane extends DataPlane {
  readonly pool: WorkerPool;
}

/** How long the admin API waits for workers' answers (status, metrics, switch confirmation). */
const WORKER_ANSWER_TIMEOUT_MS = 2000;

/**
 * `togather proxy` with PROXY_WORKERS > 1, the primary process: it owns the
 * store (Redis or file: one connection, one writer), the slot registry, the
 * admin API and the health poll (compose.ts), and N workers (node:cluster)
 * own the public listener. Every state the primary learns (its own
 * switches, the store's notifications and reconcile reads) is relayed to
 * every worker over IPC; a switch through the admin API answers once every
 * worker applies it. The primary forwards no request: Node's cluster hands
 * each new connection to a worker (round-robin), and requests are served there.
 */
export function startClusterProxy(
  config: ProxyConfig,
  options: ClusterProxyOptions,
): Promise<ComposedProxy<WorkerPoolPlane>> {
  return composeProxy(config, {
    logger: options.logger,
    healthPollIntervalMs: options.healthPollIntervalMs,
    dataPlane: (parts) => workerPoolPlane(parts, options),
  });
}

function workerPoolPlane(
  { config, store, registry, metrics, tls, logger }: DataPlaneParts,
  options: Pick<ClusterProxyOptions, 'cluster' | 'workerScript'>,
): WorkerPoolPlane {
  const restarts = new Counter({
    name: 'togather_proxy_worker_restarts_total',
    help: 'Proxy worker processes that died and were replaced (PROXY_WORKERS > 1).',
    registers: [metrics.registry],
  });
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
  registry.onChange((next, previous) => {
    logger.info(
      { actor: next.actor, from: previous.active, to: next.active, epoch: next.epoch },
      'slot state applied: relaying it to the workers',
    );
    pool.broadcastState(next);
  });
  // The certificate layer runs here for /admin/status, the metrics and ACME:
  // only this process orders; the workers get the certificates and tokens relayed.
  const relay = () => {
    const snapshot = acmeSnapshot(tls);
    if (snapshot !== undefined) pool.broadcastTls(snapshot);
  };
  tls?.acme?.onChange(relay);
  tls?.challenges?.onChange(relay);

  return {
    pool,
    metrics: clusterMetrics,
    traffic: async () =>
      trafficReport(config, await pool.ask('traffic', WORKER_ANSWER_TIMEOUT_MS), pool),
    applied: async (next) => {
      const lagging = await pool.converged(next.epoch, WORKER_ANSWER_TIMEOUT_MS);
      if (lagging.length > 0) {
        logger.warn(
          { epoch: next.epoch, workers: lagging },
          `not every worker confirmed the switch within ${WORKER_ANSWER_TIMEOUT_MS} ms`,
        );
      }
    },
    async listen() {
      const listening = await pool.start();
      // Every worker answers the challenges now.
      tls?.start();
      return listening;
    },
    logFields: () => ({ workers: pool.views().map((w) => w.pid) }),
    close: (timeoutMs) => pool.stop(timeoutMs),
  };
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
