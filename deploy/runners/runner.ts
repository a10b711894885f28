import { spawn } from 'node:child_process';
import type { Slot } from '../../common/slot.js';

/** How long a restored process may take to be healthy again. */
export interface HealthWait {
  retries: number;
  intervalMs: number;
}

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
  /** Records the version the slot's new process reported on /version (never the one asked for). */
  noteVersion(slot: Slot, version: string): Promise<void>;
  /**
   * After a failed deploy: undoes `start(slot)`, putting back what served on
   * the slot before, or stopping what the deploy started there; returns a
   * one-line detail that says which.
   */
  restore(slot: Slot, health: HealthWait): Promise<string>;
  /** Stops what runs on the slot; returns a one-line detail. */
  stop(slot: Slot): Promise<string>;
  /** The commands `--dry-run` prints for starting the slot. */
  describeStart(slot: Slot): string;
}

/** The last lines of a command's output, for a failure message. */
export function tail(output: string, lines = 5): string {
  return output.trim().split('\n').slice(-lines).join(' | ');
}

/**
 * Runs a command to its end, collecting stdout and stderr together. Never
 * rejects: a command that cannot start is exit 127, one killed by a signal
 * (or by `signal` aborting) 128.
 */
export function runToEnd(
  command: string,
  args: readonly string[],
  options: { env: NodeJS.ProcessEnv; signal?: AbortSignal },
): Promise<CommandResult> {
  return new Promise((done) => {
    const child = spawn(command, args, {
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      signal: options.signal,
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.on('error', (error) => {
      // An abort kills a running child: its 'close' below tells how it ended.
      if (error.name !== 'AbortError') done({ code: 127, output: `${command}: ${error.message}` });
    });
    child.on('close', (code, signal) => done({ code: code ?? (signal ? 128 : 1), output }));
  });
}
