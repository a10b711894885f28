import type { SlotHealthMonitor } from './slot-health-monitor.js';
import type { SlotRegistry } from './slot-registry.js';
import { SLOTS, type Slot } from './slot-state.js';
import type { SlotStore } from './store.js';

/** What the data plane knows of one slot's traffic right now. */
export interface SlotTraffic {
  url: string;
  inflight: number;
  websockets: number;
  /** The slot lost traffic and still has requests or sockets finishing. */
  draining: boolean;
}

export interface SlotStatus extends SlotTraffic {
  active: boolean;
  healthy: boolean | null;
  version: string | null;
  health_status: string | null;
  health_checked_at: string | null;
  health_error: string | null;
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
}

export interface AdminStatusSources {
  registry: SlotRegistry;
  store: Pick<SlotStore, 'kind' | 'location' | 'isUp'>;
  monitor: SlotHealthMonitor;
  traffic: (slot: Slot) => SlotTraffic;
}

/** GET /admin/status from memory only: no slot or store is asked while answering. */
export function adminStatus(sources: AdminStatusSources): AdminStatus {
  const state = sources.registry.current;
  const slot = (name: Slot): SlotStatus => {
    const traffic = sources.traffic(name);
    const health = sources.monitor.view(name);
    return {
      url: traffic.url,
      active: name === state.active,
      healthy: health.healthy,
      version: health.version,
      health_status: health.status,
      health_checked_at: health.checked_at,
      health_error: health.error,
      inflight: traffic.inflight,
      websockets: traffic.websockets,
      draining: traffic.draining,
    };
  };
  const slots = { blue: slot('blue'), green: slot('green') };
  return {
    active: state.active,
    previous: state.previous,
    epoch: state.epoch,
    switched_at: state.switched_at,
    actor: state.actor,
    store: {
      kind: sources.store.kind,
      location: sources.store.location,
      connected: sources.store.isUp(),
    },
    slots,
    draining: SLOTS.filter((s) => slots[s].draining),
  };
}
