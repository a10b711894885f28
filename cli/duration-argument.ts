import { InvalidArgumentError } from 'commander';
import { DURATION_HINT, DURATION_LIMIT, readDuration } from '../common/duration.js';

/**
 * A commander argument parser for duration flags, worded like every other
 * duration error: `argument 'soon' is invalid. use 500ms, 30s, 2m or plain milliseconds`.
 */
export function durationArgument(text: string): number {
  const reading = readDuration(text);
  if (reading.ok) return reading.ms;
  throw new InvalidArgumentError(
    reading.reason === 'unreadable' ? DURATION_HINT : `too long: ${DURATION_LIMIT}`,
  );
}
