import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Logger } from 'pino';

export interface ChangeWatcherOptions {
  /** Directories to watch (a file's own directory: a rename replaces the file). */
  directories: readonly string[];
  /**
   * What is compared to tell a change: e.g. size, mtime and inode of the
   * files. Events only wake the watcher; the signature decides.
   */
  signature: () => Promise<string>;
  /** Runs after a changed signature; never twice at once. */
  onChange: () => Promise<void>;
  logger: Logger;
  /** Quiet time after the last event before reading (a pair is written as two files). */
  debounceMs?: number;
  /** Signature check without events (fs.watch misses changes on some mounts). */
  pollMs?: number;
}

export interface ChangeWatcher {
  close(): void;
}

/** The parts of a file's stat that change when it is rewritten or replaced. */
export async function fileSignature(path: string): Promise<string> {
  try {
    const s = await stat(path, { bigint: true });
    return `${path}:${s.size}:${s.mtimeNs}:${s.ctimeNs}:${s.ino}`;
  } catch (error) {
    return `${path}:${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`;
  }
}

/**
 * Watches for changes with fs.watch plus a periodic check, debounced, and
 * calls onChange once per settled change. The first signature is taken at
 * start: what is on disk then counts as loaded.
 */
export async function watchForChanges(options: ChangeWatcherOptions): Promise<ChangeWatcher> {
  const { logger, signature, onChange } = options;
  const debounceMs = options.debounceMs ?? 250;
  const pollMs = options.pollMs ?? 10_000;
  let last = await signature();
  let closed = false;
  let debounce: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;

  async function check(): Promise<void> {
    if (running) {
      again = true;
      return;
    }
    running = (async () => {
      do {
        again = false;
        const now = await signature();
        if (closed || now === last) continue;
        last = now;
        await onChange().catch((error: unknown) => {
          logger.error({ err: error }, 'certificate reload failed');
        });
      } while (again && !closed);
    })();
    await running;
    running = undefined;
  }

  function wake(): void {
    if (closed) return;
    clearTimeout(debounce);
    debounce = setTimeout(() => void check(), debounceMs);
    debounce.unref();
  }

  const watchers: FSWatcher[] = [];
  for (const directory of new Set(options.directories)) {
    try {
      const watcher = watch(directory, { persistent: false }, wake);
      // e.g. the directory was removed: the periodic check still runs.
      watcher.on('error', (error) => logger.warn({ err: error, directory }, 'fs.watch failed'));
      watchers.push(watcher);
    } catch (error) {
      logger.warn({ err: error, directory }, 'fs.watch unavailable; relying on periodic checks');
    }
  }
  const poll = setInterval(() => void check(), pollMs);
  poll.unref();

  return {
    close() {
      closed = true;
      clearTimeout(debounce);
      clearInterval(poll);
      for (const watcher of watchers) watcher.close();
    },
  };
}
