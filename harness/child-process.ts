/**
 * A child process the tests or the benchmarks started (a togather command,
 * a peer, a load generator), with its output captured for assertions and
 * error messages, waited for by pattern, and stopped with a grace period.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

/** How much of each stream is kept (its tail): enough for any assertion, bounded for long runs. */
const STREAM_LIMIT = 4 * 1024 * 1024;
/** How much of the interleaved output `output()` keeps for error messages. */
const OUTPUT_LIMIT = 64 * 1024;

export interface ExitResult {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class WatchedProcess {
  stdout = '';
  stderr = '';
  private outputTail = '';
  readonly exited: Promise<ExitResult>;
  /** Resolves once the child has exited and its output has been read to the end. */
  readonly closed: Promise<void>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    const keep = (data: string) => {
      this.outputTail = (this.outputTail + data).slice(-OUTPUT_LIMIT);
    };
    child.stdout?.setEncoding('utf8').on('data', (data: string) => {
      this.stdout = (this.stdout + data).slice(-STREAM_LIMIT);
      keep(data);
    });
    child.stderr?.setEncoding('utf8').on('data', (data: string) => {
      this.stderr = (this.stderr + data).slice(-STREAM_LIMIT);
      keep(data);
    });
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => resolve({ code, signal }));
      // A spawn failure (binary missing) never emits 'exit'.
      child.on('error', (error) => {
        keep(`\n${error.message}\n`);
        resolve({ code: null, signal: null });
      });
    });
    this.closed = new Promise((resolve) => {
      child.on('close', () => resolve());
      child.on('error', () => resolve());
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null && this.pid > 0;
  }

  /** The last of stdout and stderr as they came, for error messages. */
  output(): string {
    return this.outputTail;
  }

  /** Waits until stdout or stderr matches, or fails with what was printed. */
  async waitFor(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = pattern.exec(this.stdout) ?? pattern.exec(this.stderr);
      if (match) return match;
      if (!this.running || Date.now() > deadline) break;
      await sleep(20);
    }
    throw new Error(
      `${this.name} ${this.running ? 'did not print' : 'exited before printing'} ${pattern}:\n${this.outputTail}`,
    );
  }

  /** Sends the signal and waits for exit; SIGKILL after the grace period. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 15_000): Promise<ExitResult> {
    if (this.running) {
      this.child.kill(signal);
      const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    return this.exited;
  }
}

/**
 * How a child is started: the tests start theirs plainly (`launch`), the
 * benchmarks register each one so that an interrupted run stops it too.
 */
export type Launch = (
  name: string,
  command: string,
  args: string[],
  env: Record<string, string>,
  cwd?: string,
) => WatchedProcess;

/** Exactly `env` plus PATH and HOME: a child sees only what it is given. */
export function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), ...env };
}

/** Starts `command` with `childEnv(env)`, stdout and stderr captured. */
export const launch: Launch = (name, command, args, env, cwd) => {
  const child = spawn(command, args, {
    env: childEnv(env),
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new WatchedProcess(name, child);
};
