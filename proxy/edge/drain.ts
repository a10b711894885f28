import type { Slot, SlotState } from '../state/slot-state.js';
import type { DrainResult, Upstream } from './upstream.js';

export interface SlotDrainerOptions {
  upstreams: Readonly<Record<Slot, Upstream>>;
  /** DRAIN_TIMEOUT in ms. */
  drainTimeoutMs: number;
}

/**
 * What a change of the active slot means for traffic already running: the
 * slot that lost traffic is drained (its requests finish, then its idle
 * sockets close; what is left at DRAIN_TIMEOUT is cut, WebSockets with
 * 1012), and a slot that gets traffic back stops being drained at once.
 */
export class SlotDrainer {
  private readonly upstreams: Readonly<Record<Slot, Upstream>>;
  private readonly drainTimeoutMs: number;

  constructor(options: SlotDrainerOptions) {
    this.upstreams = options.upstreams;
    this.drainTimeoutMs = options.drainTimeoutMs;
  }

  /** Applies a registry change; returns the old slot's drain, or null when the active slot is unchanged. */
  onChange(next: SlotState, previous: SlotState): Promise<DrainResult> | null {
    // Traffic goes there again: nothing on it may be cut any more.
    this.upstreams[next.active].cancelDrain();
    if (next.active === previous.active) return null;
    return this.upstreams[previous.active].drain(this.drainTimeoutMs);
  }
}
