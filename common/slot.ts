/**
 * The two app slots of a blue-green pair. The proxy routes to them, the app
 * names itself by one (SLOT), and `togather deploy` rolls out to the idle one:
 * a shared word of the whole system, so it lives here rather than in the
 * proxy's state.
 */
export const SLOTS = ['blue', 'green'] as const;
export type Slot = (typeof SLOTS)[number];

export function isSlot(value: unknown): value is Slot {
  return value === 'blue' || value === 'green';
}

export function otherSlot(slot: Slot): Slot {
  return slot === 'blue' ? 'green' : 'blue';
}
