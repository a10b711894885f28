import { isSlot, type Slot } from '../../common/slot.js';

/**
 * The results a switch attempt can have: the `result` of its audit entry and
 * the label values of togather_proxy_switches_total.
 */
export const SWITCH_RESULTS = [
  'switched',
  'unchanged',
  'refused',
  'conflict',
  'unavailable',
] as const;
export type SwitchResult = (typeof SWITCH_RESULTS)[number];

/** One attempt to switch, successful or not: the audit history's entry. */
export interface SwitchRecord {
  time: string;
  actor: string;
  from: Slot | null;
  to: Slot;
  /** The epoch written by a successful switch, else the epoch seen when refused. */
  epoch: number;
  result: SwitchResult;
  reason?: string;
}

function isSwitchResult(value: unknown): value is SwitchResult {
  return (SWITCH_RESULTS as readonly unknown[]).includes(value);
}

/**
 * Reads a stored record: a history file line or the state file's
 * `last_switch` (JSON), or a Redis history entry once its fields are decoded
 * (redis-codec.ts). Every store reads by this one rule, the strict one: an
 * epoch is a non-negative integer as every state's is, `from` a slot or null,
 * `reason` text when present. Fields it does not know are dropped. Returns
 * undefined for anything else (the history is an audit aid: an unreadable
 * entry is skipped, never fatal).
 */
export function parseSwitchRecord(value: unknown): SwitchRecord | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { time, actor, from, to, epoch, result, reason } = value as Record<string, unknown>;
  if (
    typeof time !== 'string' ||
    typeof actor !== 'string' ||
    (from !== null && !isSlot(from)) ||
    !isSlot(to) ||
    typeof epoch !== 'number' ||
    !Number.isSafeInteger(epoch) ||
    epoch < 0 ||
    !isSwitchResult(result) ||
    (reason !== undefined && typeof reason !== 'string')
  ) {
    return undefined;
  }
  return { time, actor, from, to, epoch, result, ...(reason !== undefined ? { reason } : {}) };
}
