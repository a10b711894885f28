import type { Slot } from '../../common/slot.js';
import type { SlotState } from './slot-state.js';
import type { SwitchRecord } from './switch-record.js';

/** The store cannot be reached: switches answer 503 `store_unavailable`. */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}

/**
 * A write was sent and no answer came (timeout, connection lost while
 * waiting): it may have been applied, and then every proxy converges to it,
 * or not. Either way it can no longer apply later.
 */
export class StoreOutcomeUnknownError extends StoreUnavailableError {
  override name = 'StoreOutcomeUnknownError';
}

/** The stored state is unreadable (corrupt file, foreign key): start-up refuses it. */
export class StoreCorruptError extends Error {
  override name = 'StoreCorruptError';
}

export type CompareAndSetResult =
  /** `recorded`: the audit entry passed along was written in the same atomic step. */
  | { ok: true; state: SlotState; recorded?: boolean }
  /** Lost the race: `state` is what the store holds now. */
  | { ok: false; state: SlotState };

/**
 * Where the slot state lives (Redis for a fleet, a file for one proxy). The
 * hot path never calls it: the proxy keeps the state in memory and the store
 * only tells it when the state changes.
 */
export interface SlotStore {
  readonly kind: 'redis' | 'file';
  /** Human-readable location for /admin/status, without secrets. */
  readonly location: string;

  /**
   * Connects and returns the stored state, writing `initialState(defaultSlot)`
   * with set-if-absent when there is none. Throws StoreCorruptError on an
   * unreadable state, StoreUnavailableError when unreachable.
   */
  init(defaultSlot: Slot): Promise<SlotState>;

  /** Reads the stored state now. Throws StoreUnavailableError. */
  read(): Promise<SlotState>;

  /**
   * Writes `next` only if the stored epoch still equals `expectedEpoch` (atomic
   * across the fleet), then notifies every proxy. Throws StoreUnavailableError.
   * A store that can also append `record` (the switch's audit entry) in the
   * same atomic step does, and says so with `recorded`, so that no committed
   * switch can miss from the history; else the caller appends it.
   */
  compareAndSet(
    expectedEpoch: number,
    next: SlotState,
    record?: SwitchRecord,
  ): Promise<CompareAndSetResult>;

  /**
   * Every state the store learns of (notifications and the periodic
   * reconcile read). Listeners must ignore states that are not newer.
   */
  onState(listener: (state: SlotState) => void): void;

  /** Whether the store is reachable now, and a listener for changes of that. */
  isUp(): boolean;
  onAvailability(listener: (up: boolean) => void): void;

  /** Appends to the capped audit history. Throws StoreUnavailableError. */
  appendHistory(record: SwitchRecord): Promise<void>;
  /** The newest `limit` records, newest first. Throws StoreUnavailableError. */
  history(limit: number): Promise<SwitchRecord[]>;

  close(): Promise<void>;
}

/**
 * Where a data plane's slot state comes from: a SlotStore, or a cluster
 * worker's relay of its primary's store (which has no availability of its own).
 */
export type SlotStateSource = Pick<SlotStore, 'kind' | 'init' | 'onState'>;
