/**
 * The slot state shared by every proxy of a fleet, and the rule that orders
 * changes to it: a state is applied only when its epoch is newer.
 */
import { isSlot, type Slot } from '../../common/slot.js';

// The data plane (proxy/edge/) still names the slot type through this module.
export type { Slot } from '../../common/slot.js';

export interface SlotState {
  active: Slot;
  previous: Slot | null;
  /** Strictly increasing; 0 for the initial state written at first start. */
  epoch: number;
  /** ISO-8601 time of the switch (or of initialisation). */
  switched_at: string;
  /** Who switched: X-Actor of the admin request, `api`, `deploy`, `init`. */
  actor: string;
}

export function initialState(defaultSlot: Slot, now = new Date()): SlotState {
  return {
    active: defaultSlot,
    previous: null,
    epoch: 0,
    switched_at: now.toISOString(),
    actor: 'init',
  };
}

/** Only the state's own fields, in their fixed order (the state file, /admin/status). */
export function stateFields(state: SlotState): SlotState {
  return {
    active: state.active,
    previous: state.previous,
    epoch: state.epoch,
    switched_at: state.switched_at,
    actor: state.actor,
  };
}

/** Whether two states are the same in every field. */
export function sameState(a: SlotState, b: SlotState): boolean {
  return (
    a.active === b.active &&
    a.previous === b.previous &&
    a.epoch === b.epoch &&
    a.switched_at === b.switched_at &&
    a.actor === b.actor
  );
}

/** Checks a state read from a store; returns a reason when it is not a valid state. */
export function invalidStateReason(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return 'not an object';
  const s = value as Record<string, unknown>;
  if (!isSlot(s.active)) return 'active is not blue or green';
  if (s.previous !== null && !isSlot(s.previous)) return 'previous is not blue, green or null';
  if (typeof s.epoch !== 'number' || !Number.isSafeInteger(s.epoch) || s.epoch < 0)
    return 'epoch is not a non-negative integer';
  if (typeof s.switched_at !== 'string' || Number.isNaN(Date.parse(s.switched_at)))
    return 'switched_at is not a date';
  if (typeof s.actor !== 'string') return 'actor is not a string';
  return undefined;
}

/**
 * The precondition every store's compareAndSet checks before writing: a valid
 * state whose epoch is above the one it replaces. A caller's bug, not an outage.
 */
export function assertValidSuccessor(expectedEpoch: number, next: SlotState): void {
  const invalid = invalidStateReason(next);
  if (invalid) throw new RangeError(`compareAndSet: invalid next state: ${invalid}`);
  if (next.epoch <= expectedEpoch) {
    throw new RangeError(`compareAndSet: next epoch ${next.epoch} is not above ${expectedEpoch}`);
  }
}
