import type { Logger } from 'pino';
import type { Slot } from '../../common/slot.js';
import { ListenerList } from './listeners.js';
import type { SlotState } from './slot-state.js';
import type { SlotStateSource } from './store.js';

export type SlotChangeListener = (next: SlotState, previous: SlotState) => void;

/**
 * The proxy's in-memory slot state: what the hot path reads. Changes arrive
 * from the store (notification, reconcile) or from this proxy's own switch,
 * in any order; only a strictly newer epoch is applied, so every proxy ends
 * on the same state whatever the order of delivery. A listener that throws
 * is logged (`logger`) and the others still hear the change.
 */
export class SlotRegistry {
  private state: SlotState;
  private readonly listeners: ListenerList<[SlotState, SlotState]>;

  constructor(initial: SlotState, logger?: Pick<Logger, 'error'>) {
    this.state = initial;
    this.listeners = new ListenerList('slot change', logger);
  }

  get current(): SlotState {
    return this.state;
  }

  /** Applies `next` when its epoch is newer; returns whether it did. */
  apply(next: SlotState): boolean {
    if (next.epoch <= this.state.epoch) return false;
    const previous = this.state;
    this.state = next;
    this.listeners.emit(next, previous);
    return true;
  }

  onChange(listener: SlotChangeListener): void {
    this.listeners.add(listener);
  }
}

/**
 * The registry a proxy starts from: the source's state (or `defaultSlot`'s
 * first state), then every state the source announces. Throws what the
 * source's init() throws (StoreCorruptError, StoreUnavailableError).
 */
export async function loadRegistry(
  source: Pick<SlotStateSource, 'init' | 'onState'>,
  defaultSlot: Slot,
  logger?: Pick<Logger, 'error'>,
): Promise<SlotRegistry> {
  const registry = new SlotRegistry(await source.init(defaultSlot), logger);
  source.onState((next) => registry.apply(next));
  return registry;
}
