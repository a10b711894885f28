import { describe, expect, it } from 'vitest';
import {
  durationProblem,
  durationSchema,
  MAX_DURATION_MS,
  parseDuration,
} from '../../common/duration.js';

describe('durations (common/duration)', () => {
  it('reads ms, s, m, h and plain milliseconds', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('2m')).toBe(120_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration(' 250 ')).toBe(250);
    expect(parseDuration('1.5s')).toBe(1_500);
    expect(parseDuration('0')).toBe(0);
  });

  it('accepts up to what setTimeout can wait, 2^31-1 ms, and no more', () => {
    expect(MAX_DURATION_MS).toBe(2_147_483_647);
    expect(parseDuration('2147483647')).toBe(MAX_DURATION_MS);
    expect(parseDuration('2147483648')).toBeUndefined();
    expect(parseDuration('25d')).toBeUndefined();
    expect(parseDuration('597h')).toBeUndefined(); // 24.9 days
    expect(parseDuration('596h')).toBe(596 * 3_600_000);
    expect(parseDuration('99999999999999999999')).toBeUndefined();
    expect(parseDuration('1' + '0'.repeat(400) + 's')).toBeUndefined(); // Infinity
  });

  it('says what is wrong, in one wording for every flag and variable', () => {
    expect(durationProblem('30s')).toBeUndefined();
    expect(durationProblem('soon')).toBe(
      '"soon" is not a duration (use 500ms, 30s, 2m or plain milliseconds)',
    );
    expect(durationProblem('-1s')).toBe(
      '"-1s" is not a duration (use 500ms, 30s, 2m or plain milliseconds)',
    );
    expect(durationProblem('99999999999999999999')).toBe(
      '"99999999999999999999" is too long a duration (at most 2147483647 ms, about 24.8 days)',
    );
  });

  it('the zod field of every env variable duration refuses too long ones', () => {
    const field = durationSchema('30s');
    expect(field.parse(undefined)).toBe(30_000);
    const result = field.safeParse('3000h');
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((i) => i.message)).toEqual([
      '"3000h" is too long a duration (at most 2147483647 ms, about 24.8 days)',
    ]);
  });
});
