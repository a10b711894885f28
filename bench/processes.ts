import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** How much of a child's output is kept for error messages (the tail). */
const OUTPUT_LIMIT = 64 * 1024;

/** A child process the benchmark started and must stop, whatever happens. */
export class ManagedProcess {
  private outputTail = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once the child has exited and its output has been read to the end. */
  readonly closed: Promise<void>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    const keep = (data: string) => {
      this.outputTail = (this.outputTail + data).slice(-OUTPUT_LIMIT);
    };
    child.stdout?.setEncoding('utf8').on('data', keep);
    child.stderr?.setEncoding('utf8').on('data', keep);
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

  output(): string {
    return this.outputTail;
  }

  /** Waits until the output matches, or fails with what was printed. */
  async waitFor(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const match = pattern.exec(this.outputTail);
      if (match) return match;
      if (!this.running) break;
      await sleep(20);
    }
    throw new Error(
      `${this.name} ${this.running ? 'did not print' : 'exited before printing'} ${pattern}:\n${this.outputTail}`,
    );
  }

  /** Sends the signal and waits for exit; SIGKILL after the grace period. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
    registry.delete(this);
    if (!this.running) return;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

const registry = new Set<ManagedProcess>();
const tempDirs = new Set<string>();

/** Starts a child process and registers it for cleanup on exit and on SIGINT. */
export function startProcess(
  name: string,
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): ManagedProcess {
  const child = spawn(command, args, {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const managed = new ManagedProcess(name, child);
  registry.add(managed);
  void managed.exited.then(() => registry.delete(managed));
  return managed;
}

/** A temporary directory removed when the benchmark ends. */
export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `togather-bench-${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

/** Stops every process still running (in reverse start order) and removes temp dirs. */
export async function stopAll(): Promise<void> {
  const processes = [...registry].reverse();
  for (const managed of processes) await managed.stop();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

/**
 * Makes sure no child outlives the benchmark: SIGINT/SIGTERM stop everything
 * gracefully; a plain exit (including a crash) kills what is left at once.
 */
export function installCleanup(): void {
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: stopping everything the benchmark started…\n`);
    void stopAll().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.on('exit', () => {
    for (const managed of registry) if (managed.running) managed.child.kill('SIGKILL');
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
