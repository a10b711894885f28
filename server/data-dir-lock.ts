import { mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { processAlive } from '../common/process-alive.js';

/** A database that cannot be opened because another process holds it. */
export class DataDirBusyError extends Error {
  override name = 'DataDirBusyError';
  constructor(
    message: string,
    /** The process holding it, when known. */
    readonly holder?: number,
  ) {
    super(message);
  }
}

const LOCK_FILE = 'togather.lock';

/**
 * Embedded PGlite has no lock of its own: two processes opening the same
 * directory would both write to it and corrupt it. This pid file makes the
 * second one fail with a clear message instead. A lock left by a process
 * that died is taken over.
 */
export async function lockDataDir(dir: string): Promise<() => Promise<void>> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(path, `${process.pid}\n`, { flag: 'wx' });
      return () => releaseLock(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = Number.parseInt((await readFile(path, 'utf8').catch(() => '')).trim(), 10);
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && processAlive(holder)) {
      throw new DataDirBusyError(
        `DATA_DIR ${dir} is in use by process ${holder}: embedded PGlite serves one process only ` +
          '(stop it, or set DATABASE_URL to share a PostgreSQL database)',
        holder,
      );
    }
    await unlink(path).catch(() => undefined);
  }
  throw new DataDirBusyError(`could not lock DATA_DIR ${dir} (${path} keeps reappearing)`);
}

async function releaseLock(path: string): Promise<void> {
  const holder = (await readFile(path, 'utf8').catch(() => '')).trim();
  if (holder === String(process.pid)) await unlink(path).catch(() => undefined);
}
