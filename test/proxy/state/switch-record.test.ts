import { describe, expect, it } from 'vitest';
import { historyFields, parseHistoryEntry } from '../../../proxy/state/redis-codec.js';
import {
  parseSwitchRecord,
  SWITCH_RESULTS,
  type SwitchRecord,
} from '../../../proxy/state/switch-record.js';

/**
 * One rule for every stored switch record: a history file line and the state
 * file's last_switch (JSON), and a Redis history entry (stream fields).
 */

const written: SwitchRecord[] = [
  {
    time: '2026-01-02T03:04:05.678Z',
    actor: 'alice',
    from: 'blue',
    to: 'green',
    epoch: 7,
    result: 'switched',
  },
  {
    time: '2026-01-02T03:04:05.678Z',
    actor: 'cli:bob',
    from: null,
    to: 'blue',
    epoch: 0,
    result: 'refused',
    reason: 'blue is unhealthy',
  },
  ...SWITCH_RESULTS.map((result) => ({
    time: '2026-01-02T03:04:05.678Z',
    actor: 'api',
    from: 'green' as const,
    to: 'blue' as const,
    epoch: 3,
    result,
  })),
];

/** A record as a Redis history entry reads back (XRANGE's flat field list). */
function asStreamEntry(fields: Record<string, string>): string[] {
  return Object.entries(fields).flat();
}

describe('switch records', () => {
  it('reads back every record the stores write, in both formats, unchanged', () => {
    for (const record of written) {
      expect(parseSwitchRecord(JSON.parse(JSON.stringify(record)))).toEqual(record);
      expect(parseHistoryEntry(historyFields(record))).toEqual(record);
    }
  });

  it('drops fields it does not know', () => {
    const record = { ...written[0]!, extra: 'x' };
    expect(parseSwitchRecord(record)).toEqual(written[0]);
    expect(parseHistoryEntry([...historyFields(written[0]!), 'extra', 'x'])).toEqual(written[0]);
  });

  const base = {
    time: '2026-01-02T03:04:05.678Z',
    actor: 'api',
    from: 'blue',
    to: 'green',
    epoch: '1',
    result: 'switched',
  };

  it.each([
    ['a negative epoch', { epoch: -1 }, { epoch: '-1' }],
    ['a fractional epoch', { epoch: 1.5 }, { epoch: '1.5' }],
    ['an epoch beyond 2^53', { epoch: 2 ** 53 }, { epoch: '9007199254740992' }],
    ['an epoch that is not a number', { epoch: '1' }, { epoch: '' }],
    ['an unknown result', { result: 'maybe' }, { result: 'maybe' }],
    ['an unknown slot', { to: 'mauve' }, { to: 'mauve' }],
    ['an unknown previous slot', { from: 'mauve' }, { from: 'mauve' }],
    ['no time', { time: undefined }, { time: undefined }],
    ['no actor', { actor: undefined }, { actor: undefined }],
  ])('refuses %s in both formats', (_what, json, stream) => {
    const line = { ...base, epoch: 1, ...json };
    expect(parseSwitchRecord(JSON.parse(JSON.stringify(line)))).toBeUndefined();
    const fields = Object.fromEntries(
      Object.entries({ ...base, ...stream }).filter(
        (entry): entry is [string, string] => entry[1] !== undefined,
      ),
    );
    expect(parseHistoryEntry(asStreamEntry(fields))).toBeUndefined();
  });

  it('refuses a reason that is not text, and what is not an object', () => {
    expect(parseSwitchRecord({ ...base, epoch: 1, reason: 5 })).toBeUndefined();
    for (const value of [null, 'switched', 7, []]) expect(parseSwitchRecord(value)).toBeUndefined();
    expect(parseHistoryEntry(['junk', 'yes'])).toBeUndefined();
  });
});
