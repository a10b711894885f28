import { z } from 'zod';

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/;
const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * The longest duration accepted: what setTimeout can wait (2^31-1 ms, about
 * 24.8 days). Longer values would reach Node as "delay out of range" errors,
 * or be cut to 1 ms, wherever they end up as a timer.
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/** How a duration is written, for error messages. */
export const DURATION_HINT = 'use 500ms, 30s, 2m or plain milliseconds';

const limitText = (maxMs: number) =>
  maxMs === MAX_DURATION_MS
    ? `at most ${MAX_DURATION_MS} ms, about 24.8 days`
    : `at most ${maxMs} ms, ${Math.round(maxMs / 86_400_000)} days`;

/** The bound, for error messages. */
export const DURATION_LIMIT = limitText(MAX_DURATION_MS);

export type DurationReading =
  { ok: true; ms: number } | { ok: false; reason: 'unreadable' | 'too_long' };

/**
 * Reads `500ms`, `30s`, `2m`, `1h`, `30d` or plain milliseconds, up to
 * `maxMs` (MAX_DURATION_MS unless the value is an offset that never becomes
 * one timer, such as how long before expiry a certificate is renewed).
 */
export function readDuration(text: string, maxMs = MAX_DURATION_MS): DurationReading {
  const match = DURATION.exec(text.trim());
  if (!match) return { ok: false, reason: 'unreadable' };
  const value = Number(match[1]) * UNIT_MS[match[2] ?? 'ms']!;
  if (!Number.isFinite(value)) return { ok: false, reason: 'too_long' };
  const ms = Math.round(value);
  if (ms > maxMs) return { ok: false, reason: 'too_long' };
  return { ok: true, ms };
}

/** Milliseconds, or undefined when unreadable or longer than MAX_DURATION_MS. */
export function parseDuration(text: string): number | undefined {
  const reading = readDuration(text);
  return reading.ok ? reading.ms : undefined;
}

/**
 * What is wrong with a duration, as the rest of a sentence that starts with
 * the setting's name: `DRAIN_TIMEOUT: "soon" is not a duration (...)`.
 */
export function durationProblem(text: string, maxMs = MAX_DURATION_MS): string | undefined {
  const reading = readDuration(text, maxMs);
  if (reading.ok) return undefined;
  return reading.reason === 'unreadable'
    ? `"${text}" is not a duration (${DURATION_HINT})`
    : `"${text}" is too long a duration (${limitText(maxMs)})`;
}

/** A zod field that accepts a duration string and yields milliseconds. */
export function durationSchema(defaultValue: string, options: { maxMs?: number } = {}) {
  const maxMs = options.maxMs ?? MAX_DURATION_MS;
  return z
    .string()
    .default(defaultValue)
    .transform((text, ctx) => {
      const reading = readDuration(text, maxMs);
      if (!reading.ok) {
        ctx.addIssue({ code: 'custom', message: durationProblem(text, maxMs)! });
        return z.NEVER;
      }
      return reading.ms;
    });
}
