import type { Slot } from '../proxy/slot-state.js';

export interface CommandResult {
  code: number;
  /** stdout and stderr, interleaved, for failure messages. */
  output: string;
}

/**
 * Starts the new version on a slot. `compose` drives the docker compose
 * stack; `local` runs `togather serve` processes from a build directory
 * (togather dev and the tests).
 */
export interface SlotRunner {
  readonly kind: 'compose' | 'local';
  /** The image or build directory being deployed, for the record. */
  readonly artifact: string;
  /** Base URL of the slot's direct port (health and version checks). */
  slotUrl(slot: Slot): string;
  /** Runs a togather command of the new version (snapshot, migrate) with the app's settings. */
  runCommand(slot: Slot, args: string[]): Promise<CommandResult>;
  /** Starts the new version on the slot, replacing what ran there; returns a one-line detail. */
  start(slot: Slot): Promise<string>;
  /** Why the slot's new process is already gone, if it is (fail fast instead of waiting). */
  exited(slot: Slot): string | undefined;
  /** Stops what runs on the slot; returns a one-line detail. */
  stop(slot: Slot): Promise<string>;
  /** The commands `--dry-run` prints for starting the slot. */
  describeStart(slot: Slot): string;
}

/** The last lines of a command's output, for a failure message. */
export function tail(output: string, lines = 5): string {
  return output.trim().split('\n').slice(-lines).join(' | ');
}
