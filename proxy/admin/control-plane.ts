import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { urlOf } from '../../common/listen-address.js';
import type { Logger } from 'pino';
import { AdminAuth } from './auth.js';
import { buildAdminApi } from './api.js';
import type { MetricsSource } from './routes/operations.js';
import { adminStatus, type TrafficReport } from './status.js';
import type { ProxyConfig } from '../config.js';
import { healthUrl, runHealthGate, type HealthGateOptions } from './health-gate.js';
import { SlotHealthMonitor } from './health-monitor.js';
import type { SlotRegistry } from '../state/slot-registry.js';
import type { Slot } from '../../common/slot.js';
import type { SlotState } from '../state/slot-state.js';
import type { SlotStore } from '../state/store.js';
import { slotTls, type SlotTls } from '../edge/upstream-trust.js';
import { SwitchService, type SwitchCounter, type SwitchOutcome } from './switch-service.js';

export interface ControlPlaneOptions {
  config: Pick<
    ProxyConfig,
    | 'ADMIN_HOST'
    | 'ADMIN_PORT'
    | 'ADMIN_API_KEY'
    | 'BLUE_URL'
    | 'GREEN_URL'
    | 'HEALTH_PATH'
    | 'UPSTREAM_CA_FILE'
  >;
  store: SlotStore;
  registry: SlotRegistry;
  /** The data plane's traffic per slot (URLs without password), and its workers if any. */
  traffic: () => TrafficReport | Promise<TrafficReport>;
  /**
   * Runs after a switch is written and applied here, before the admin API
   * answers: with workers, waits until every worker applies it.
   */
  applied?: (state: SlotState) => Promise<void>;
  metrics: MetricsSource;
  switches: SwitchCounter;
  logger: Logger;
  /** How often both slots' health is polled for /admin/status. */
  healthPollIntervalMs?: number;
  /** The certificate layer's view for /admin/status's `tls` (null there without TLS). */
  tls?: () => object;
  gate?: HealthGateOptions;
}

export interface ControlPlane {
  readonly switches: SwitchService;
  readonly monitor: SlotHealthMonitor;
  readonly app: FastifyInstance;
  /** Starts the admin listener and the health poll; returns the admin URL. */
  listen(): Promise<string>;
  close(): Promise<void>;
}

/** The admin side of the proxy: switch service, health gate and poll, admin API. */
export function createControlPlane(options: ControlPlaneOptions): ControlPlane {
  const { config, store, registry, logger } = options;
  const healthUrls: Record<Slot, string> = {
    blue: healthUrl(config.BLUE_URL, config.HEALTH_PATH),
    green: healthUrl(config.GREEN_URL, config.HEALTH_PATH),
  };
  // The gate and the poll trust an https slot exactly as its requests do (upstream.ts).
  const ca = config.UPSTREAM_CA_FILE;
  const gate: HealthGateOptions = { ...options.gate, ca: ca?.pem };
  const tls: Record<Slot, SlotTls | null> = {
    blue: slotTls(config.BLUE_URL, ca),
    green: slotTls(config.GREEN_URL, ca),
  };
  const monitor = new SlotHealthMonitor({
    urls: healthUrls,
    intervalMs: options.healthPollIntervalMs ?? 5000,
    timeoutMs: gate.timeoutMs ?? 2000,
    ca: ca?.pem,
    logger,
  });
  const switches = new SwitchService({
    store,
    registry,
    switches: options.switches,
    logger,
    gate: async (slot) => {
      const result = await runHealthGate(healthUrls[slot], gate);
      const last = result.attempts[result.attempts.length - 1];
      if (last) monitor.record(slot, last);
      return result;
    },
  });
  const applied = options.applied;
  const confirmed = async (outcome: Promise<SwitchOutcome>): Promise<SwitchOutcome> => {
    const result = await outcome;
    if (applied !== undefined && result.ok && result.changed) await applied(result.state);
    return result;
  };
  const app = buildAdminApi({
    switches: {
      switch: (slot, request) => confirmed(switches.switch(slot, request)),
      rollback: (request) => confirmed(switches.rollback(request)),
    },
    auth: new AdminAuth({ apiKey: config.ADMIN_API_KEY }),
    status: async () => ({
      ...adminStatus({ registry, store, monitor, tls }, await options.traffic()),
      tls: options.tls?.() ?? null,
    }),
    history: (limit) => store.history(limit),
    metrics: options.metrics,
    logger,
  });

  return {
    switches,
    monitor,
    app,
    async listen() {
      // Ready (/healthz) only once both slots' health is known: a restarted
      // proxy's /admin/status and gate never start from "unknown".
      await monitor.start();
      await app.listen({ host: config.ADMIN_HOST, port: config.ADMIN_PORT });
      return urlOf(app.server.address() as AddressInfo);
    },
    async close() {
      monitor.stop();
      await app.close();
    },
  };
}
