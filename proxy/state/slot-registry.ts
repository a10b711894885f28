import type { SlotState } from './slot-state.js';

export type SlotChangeListener = (next: SlotState, previous: SlotState) => void;

/**
 * The proxy's in-memory slot state: what the hot path reads. Changes arrive
 * from the store (notification, reconcile) or from this proxy's own switch,
 * in any order; only a strictly newer epoch is applied, so every proxy ends
 * on the same state whatever the order of delivery.
 */
export class SlotRegistry {
  private state: SlotState;
  private readonly listeners: SlotChangeListener[] = [];

  constructor(initial: SlotState) {
    this.state = initial;
  }

  get current(): SlotState {
    return this.state;
  }

  /** Applies `next` when its epoch is newer; returns whether it did. */
  apply(next: SlotState): boolean {
    if (next.epoch <= this.state.epoch) return false;
    const previous = this.state;
    this.state = next;
    for (const listener of this.listeners) listener(next, previous);
    return true;
  }

  onChange(listener: SlotChangeListener): void {
    this.listeners.push(listener);
  }
}
