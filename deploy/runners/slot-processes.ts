import { randomUUID } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { createConnection } from 'node:net';
import { processAlive } from '../../common/process-alive.js';
import type { Slot } from '../../common/slot.js';

/** A `togather serve` process on a slot port, as the local runner and `togather dev` record it. */
export interface SlotProcess {
  pid: number;
  port: number;
  /** The build directory (dist tree) it runs. */
  build: string;
  /** What its /version reported; null until it has (never the version a deploy asked for). */
  version: string | null;
  started_at: string;
  log: string | null;
  /** Who started it: `dev` (a child of togather dev) or `deploy` (detached). */
  started_by: 'dev' | 'deploy';
}

export type SlotProcesses = Partial<Record<Slot, SlotProcess>>;

/**
 * The small state file that lets the local runner stop the old process of a
 * slot before starting the new one, and `togather dev` stop every slot
 * process on Ctrl-C, including those a deploy started.
 */
export class SlotProcessFile {
  /** Writes of this process, one after another (each reads, changes one slot, renames). */
  private writing: Promise<void> = Promise.resolve();

  constructor(readonly path: string) {}

  read(): SlotProcesses {
    try {
      return JSON.parse(readFileSync(this.path, 'utf8')) as SlotProcesses;
    } catch {
      return {};
    }
  }

  set(slot: Slot, entry: SlotProcess | undefined): Promise<void> {
    const write = this.writing.then(async () => {
      const all = this.read();
      if (entry) all[slot] = entry;
      else delete all[slot];
      await fs.mkdir(dirname(this.path), { recursive: true });
      const temp = `${this.path}.${process.pid}.${randomUUID()}.tmp`;
      await fs.writeFile(temp, JSON.stringify(all, null, 2) + '\n', { mode: 0o600 });
      await fs.rename(temp, this.path);
    });
    this.writing = write.catch(() => {});
    return write;
  }
}

/**
 * Whether `pid` is still a togather process (so a recycled pid of an unrelated
 * program is never signalled). Where /proc is missing, liveness is all we know.
 */
export function isTogatherProcess(pid: number): boolean {
  if (!processAlive(pid)) return false;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('togather');
  } catch {
    return true;
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopProcess(
  pid: number,
  graceMs: number,
): Promise<'stopped' | 'killed' | 'gone'> {
  if (!processAlive(pid)) return 'gone';
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return 'gone';
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!processAlive(pid)) return 'stopped';
    await new Promise((r) => setTimeout(r, 50));
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return 'stopped';
  }
  while (processAlive(pid)) await new Promise((r) => setTimeout(r, 20));
  return 'killed';
}

/** Whether something accepts connections on 127.0.0.1:port. */
export function portInUse(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
