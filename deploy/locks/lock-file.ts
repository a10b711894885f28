import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { processAlive } from '../../common/process-alive.js';
import {
  holdLock,
  isLockOwner,
  LockHeldError,
  newOwner,
  unreadableOwner,
  type DeployLock,
  type HeldLock,
  type LockOwner,
} from './lock.js';

interface LockFileContent extends LockOwner {
  /** Milliseconds since the epoch after which the lock is stale. */
  expires_at: number;
}

export interface FileLockOptions {
  path: string;
  ttlMs: number;
  now?: () => number;
}

/**
 * The deploy lock as a file (no Redis): created with O_EXCL so exactly one
 * deploy gets it, renewed by rewriting its expiry (temp file + rename). A
 * lock past its expiry, or held by a process of this host that no longer
 * exists, is stale and taken over.
 */
export function createFileLock(options: FileLockOptions): DeployLock {
  const { path, ttlMs } = options;
  const now = options.now ?? Date.now;

  async function read(file = path): Promise<LockFileContent | 'unreadable' | undefined> {
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    try {
      const parsed = JSON.parse(text) as unknown;
      if (isLockOwner(parsed) && typeof (parsed as LockFileContent).expires_at === 'number') {
        return parsed as LockFileContent;
      }
    } catch {
      // a half-written or foreign file: judged by its age below
    }
    return 'unreadable';
  }

  async function staleReason(content: LockFileContent | 'unreadable'): Promise<string | undefined> {
    if (content === 'unreadable') {
      // Written in one call, so a partial file is a crash mid-write: stale after one TTL.
      const stat = await fs.stat(path).catch(() => undefined);
      return stat && now() - stat.mtimeMs > ttlMs ? 'unreadable and old' : undefined;
    }
    if (content.expires_at <= now()) return 'expired';
    if (content.holder.endsWith(`@${hostname()}`) && !processAlive(content.pid)) {
      return `holder pid ${content.pid} is gone`;
    }
    return undefined;
  }

  async function write(file: string, content: LockFileContent, exclusive: boolean): Promise<void> {
    const handle = await fs.open(file, exclusive ? 'wx' : 'w', 0o600);
    try {
      await handle.writeFile(JSON.stringify(content));
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  /** Moves a stale lock aside, but only if it is still the one judged stale. */
  async function removeStale(staleToken: string): Promise<void> {
    const aside = `${path}.stale-${randomUUID()}`;
    try {
      await fs.rename(path, aside);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    const moved = await read(aside);
    const movedToken = moved && moved !== 'unreadable' ? moved.token : '';
    if (movedToken !== staleToken && moved !== 'unreadable') {
      // Another deploy took the lock in between: put its lock back.
      await fs.link(aside, path).catch(() => {});
    }
    await fs.rm(aside, { force: true });
  }

  async function holder() {
    const content = await read();
    if (!content || content === 'unreadable') return undefined;
    if (await staleReason(content)) return undefined;
    return { owner: stripExpiry(content), expiresInMs: content.expires_at - now() };
  }

  return {
    kind: 'file',
    location: path,
    holder,
    async acquire(purpose) {
      await fs.mkdir(dirname(path), { recursive: true });
      const owner = newOwner(purpose);
      for (let attempt = 0; attempt < 5; attempt++) {
        try {
          await write(path, { ...owner, expires_at: now() + ttlMs }, true);
          return hold(owner);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        }
        const current = await read();
        if (current === undefined) continue; // released between our tries
        const stale = await staleReason(current);
        if (!stale) {
          if (current === 'unreadable') throw new LockHeldError(unreadableOwner('file'), ttlMs);
          throw new LockHeldError(stripExpiry(current), current.expires_at - now());
        }
        await removeStale(current === 'unreadable' ? '' : current.token);
      }
      throw new Error(`could not take the deploy lock ${path}: it keeps changing hands`);
    },
  };

  function hold(owner: LockOwner): HeldLock {
    const ours = async () => {
      const current = await read();
      return current !== undefined && current !== 'unreadable' && current.token === owner.token;
    };
    return holdLock(owner, ttlMs, {
      lostReason: `the deploy lock ${path} was removed or taken over`,
      async renew() {
        // A lock file that cannot be read is not ours any more.
        if (!(await ours().catch(() => false))) return false;
        const temp = `${path}.renew-${owner.token}`;
        try {
          await write(temp, { ...owner, expires_at: now() + ttlMs }, false);
          await fs.rename(temp, path);
        } catch {
          // retried at the next tick; the TTL covers two misses
          await fs.rm(temp, { force: true }).catch(() => {});
        }
        return true;
      },
      async remove() {
        // An unreadable state dir throws: the lock expires on its own.
        if (await ours()) await fs.rm(path, { force: true });
      },
    });
  }
}

function stripExpiry(content: LockFileContent): LockOwner {
  const { token, holder, pid, since, purpose } = content;
  return { token, holder, pid, since, purpose };
}
