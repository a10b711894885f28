import { redactSlotUrl } from '../../common/logger.js';
import type { SlotHealthMonitor } from './health-monitor.js';
import type { SlotRegistry } from '../state/slot-registry.js';
import { stateFields } from '../state/slot-state.js';
import { SLOTS, type Slot } from '../../common/slot.js';
import type { SlotStore } from '../state/store.js';
import type { SlotTraffic } from '../edge/edge-proxy.js';
import type { SlotTls } from '../edge/upstream-trust.js';

/** One slot in /admin/status: its traffic (the URL with its secrets hidden), health and trust. */
export interface SlotStatus extends SlotTraffic {
  active: boolean;
  healthy: boolean | null;
  version: string | null;
  health_status: string | null;
  health_checked_at: string | null;
  health_error: string | null;
  /** null for an http slot; for https, the trust its certificate is checked against. */
  tls: SlotTls | null;
}

/** One worker of a `PROXY_WORKERS > 1` proxy, as /admin/status lists it. */
export interface WorkerStatus {
  id: number;
  pid: number;
  started_at: string;
  /** Listening on the public port. */
  ready: boolean;
  /** Answered the status question in time (its traffic is counted only then). */
  responding: boolean;
  /** The newest epoch it has confirmed applying. */
  epoch: number;
  /** The slot it sends new requests to (null when it did not answer). */
  active: Slot | null;
  inflight: Record<Slot, number> | null;
  websockets: Record<Slot, number> | null;
  draining: Slot[];
}

/** The data plane's traffic: per slot (over every worker), and each worker when there are several. */
export interface TrafficReport {
  slots: Record<Slot, SlotTraffic>;
  workers?: WorkerStatus[];
}

export interface AdminStatus {
  active: Slot;
  previous: Slot | null;
  epoch: number;
  switched_at: string;
  actor: string;
  store: { kind: 'redis' | 'file'; location: string; connected: boolean };
  slots: Record<Slot, SlotStatus>;
  /** The slots being drained now. */
  draining: Slot[];
  /** With PROXY_WORKERS > 1: every worker process. */
  workers?: WorkerStatus[];
}

export interface AdminStatusSources {
  registry: SlotRegistry;
  store: Pick<SlotStore, 'kind' | 'location' | 'isUp'>;
  monitor: SlotHealthMonitor;
  tls: Record<Slot, SlotTls | null>;
}

/**
 * GET /admin/status from memory only: no slot or store is asked while
 * answering (the traffic comes from this process or, over IPC, its workers).
 */
export function adminStatus(sources: AdminStatusSources, report: TrafficReport): AdminStatus {
  const state = sources.registry.current;
  const slot = (name: Slot): SlotStatus => {
    const traffic = report.slots[name];
    const health = sources.monitor.view(name);
    return {
      url: redactSlotUrl(traffic.url),
      active: name === state.active,
      healthy: health.healthy,
      version: health.version,
      health_status: health.status,
      health_checked_at: health.checked_at,
      health_error: health.error,
      tls: sources.tls[name],
      inflight: traffic.inflight,
      websockets: traffic.websockets,
      draining: traffic.draining,
    };
  };
  const slots = { blue: slot('blue'), green: slot('green') };
  return {
    ...stateFields(state),
    store: {
      kind: sources.store.kind,
      location: sources.store.location,
      connected: sources.store.isUp(),
    },
    slots,
    draining: SLOTS.filter((s) => slots[s].draining),
    ...(report.workers ? { workers: report.workers } : {}),
  };
}
