import { invalidStateReason, type SlotState } from './slot-state.js';
import { StoreCorruptError } from './store.js';
import { parseSwitchRecord, type SwitchRecord } from './switch-record.js';

/*
 * How the slot state and the switch records are laid out in Redis: the state
 * as the fields of a hash (previous '' for none), each record as the
 * field/value pairs of a stream entry (from '' for none, reason only when
 * there is one). The layout is shared by every version of a fleet.
 */

/** The state as script arguments: the hash fields in order, then its JSON. */
export function stateArgs(state: SlotState): string[] {
  return [
    state.active,
    state.previous ?? '',
    String(state.epoch),
    state.switched_at,
    state.actor,
    JSON.stringify(state),
  ];
}

/** A flat [field, value, ...] reply as a map. */
export function pairs(flat: unknown[]): Map<string, string> {
  const fields = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) fields.set(String(flat[i]), String(flat[i + 1]));
  return fields;
}

/** Reads the slot hash's fields; throws StoreCorruptError when they are not a slot state. */
export function parseSlotHash(fields: Map<string, string>, key: string): SlotState {
  const epochText = fields.get('epoch');
  const previous = fields.get('previous');
  const candidate = {
    active: fields.get('active'),
    previous: previous === '' ? null : previous,
    epoch: epochText !== undefined && /^\d+$/.test(epochText) ? Number(epochText) : epochText,
    switched_at: fields.get('switched_at'),
    actor: fields.get('actor'),
  };
  const reason = invalidStateReason(candidate);
  if (reason) throw new StoreCorruptError(`${key} is not a slot state: ${reason}`);
  return candidate as SlotState;
}

/** A switch record as the field/value pairs of a history stream entry. */
export function historyFields(record: SwitchRecord): string[] {
  const fields = [
    'time',
    record.time,
    'actor',
    record.actor,
    'from',
    record.from ?? '',
    'to',
    record.to,
    'epoch',
    String(record.epoch),
    'result',
    record.result,
  ];
  if (record.reason !== undefined) fields.push('reason', record.reason);
  return fields;
}

/**
 * A history stream entry as a switch record (undefined when it is not one):
 * the fields decoded as historyFields wrote them, then read by the one rule
 * of every store.
 */
export function parseHistoryEntry(flat: unknown[]): SwitchRecord | undefined {
  const fields = pairs(flat);
  const from = fields.get('from');
  const epoch = fields.get('epoch');
  return parseSwitchRecord({
    time: fields.get('time'),
    actor: fields.get('actor'),
    from: from === '' ? null : from,
    to: fields.get('to'),
    epoch: epoch !== undefined && /^\d+$/.test(epoch) ? Number(epoch) : epoch,
    result: fields.get('result'),
    reason: fields.get('reason'),
  });
}
