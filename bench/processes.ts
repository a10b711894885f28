import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, type Launch, type WatchedProcess } from '../harness/child-process.js';

/** A child process the benchmark started and must stop, whatever happens (stopAll, installCleanup). */
export type ManagedProcess = WatchedProcess;

const registry = new Set<ManagedProcess>();
const tempDirs = new Set<string>();

/** Starts a child process and registers it for cleanup on exit and on SIGINT. */
export const startProcess: Launch = (name, command, args, env, cwd) => {
  const managed = launch(name, command, args, env, cwd);
  registry.add(managed);
  void managed.exited.then(() => registry.delete(managed));
  return managed;
};

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
