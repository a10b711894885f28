import { randomUUID } from 'node:crypto';
import { hostname, userInfo } from 'node:os';

/** Who holds the deploy lock, written into it so a refused deploy can say so. */
export interface LockOwner {
  /** Random per acquisition: only the holder may renew or release. */
  token: string;
  /** user@host */
  holder: string;
  pid: number;
  /** ISO time the lock was taken. */
  since: string;
  /** What the holder is doing, e.g. "deploy 1.4.0 to green". */
  purpose: string;
}

/** Another deploy holds the lock: exit 1 with who and since when. */
export class LockHeldError extends Error {
  override name = 'LockHeldError';
  constructor(
    readonly owner: LockOwner,
    readonly expiresInMs: number,
  ) {
    super(
      `another deploy holds the lock: ${owner.holder} pid ${owner.pid} since ${owner.since}` +
        ` (${owner.purpose}); it expires in ${Math.max(0, Math.ceil(expiresInMs / 1000))} s unless renewed`,
    );
  }
}

export interface HeldLock {
  readonly owner: LockOwner;
  /** Resolves with a reason if the lock is lost (renewal failed, taken over): the deploy must stop. */
  readonly lost: Promise<string>;
  /** Releases if still ours; never throws (it runs on every exit path). */
  release(): Promise<void>;
}

/**
 * The deploy lock: one deploy at a time per environment. Held with a time to
 * live that the holder renews, so the lock of a killed deploy expires on its
 * own instead of blocking deploys forever.
 */
export interface DeployLock {
  readonly kind: 'redis' | 'file';
  readonly location: string;
  /** Takes the lock or throws LockHeldError. */
  acquire(purpose: string): Promise<HeldLock>;
  /** The current holder, if any (for `deploy status`). */
  holder(): Promise<{ owner: LockOwner; expiresInMs: number } | undefined>;
}

export function newOwner(purpose: string, now = new Date()): LockOwner {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (some containers): keep "unknown"
  }
  return {
    token: randomUUID(),
    holder: `${user}@${hostname()}`,
    pid: process.pid,
    since: now.toISOString(),
    purpose,
  };
}

export function isLockOwner(value: unknown): value is LockOwner {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.token === 'string' &&
    typeof v.holder === 'string' &&
    typeof v.pid === 'number' &&
    typeof v.since === 'string' &&
    typeof v.purpose === 'string'
  );
}

/** The holder shown for a lock whose content cannot be read (`what`: file or value). */
export function unreadableOwner(what: string): LockOwner {
  return {
    token: '',
    holder: `unknown (unreadable lock ${what})`,
    pid: 0,
    since: 'unknown',
    purpose: 'unknown',
  };
}

/** Renewal runs at a third of the time to live: two renewals may fail before it lapses. */
export function renewalInterval(ttlMs: number): number {
  return Math.max(50, Math.floor(ttlMs / 3));
}

/** How one kind of lock keeps a lock it has taken. */
export interface LockKeeper {
  /** Extends the time to live if the lock is still ours: false when it is not. A throw is retried. */
  renew(): Promise<boolean>;
  /** Removes the lock if it is still ours. A throw is ignored: the lock expires on its own. */
  remove(): Promise<void>;
  /** What `lost` says when renew() finds the lock gone. */
  lostReason: string;
}

/** A taken lock, renewed (one renewal at a time) until it is released or lost. */
export function holdLock(owner: LockOwner, ttlMs: number, keeper: LockKeeper): HeldLock {
  let resolveLost: (reason: string) => void = () => {};
  const lost = new Promise<string>((resolve) => (resolveLost = resolve));
  let released = false;
  let renewing = Promise.resolve();
  const timer = setInterval(() => {
    renewing = renewing.then(async () => {
      if (released) return;
      // A failed renewal is retried at the next tick; the time to live covers two misses.
      const ours = await keeper.renew().catch(() => true);
      if (!ours && !released) {
        clearInterval(timer);
        resolveLost(keeper.lostReason);
      }
    });
  }, renewalInterval(ttlMs));
  timer.unref();
  return {
    owner,
    lost,
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      await renewing;
      await keeper.remove().catch(() => {});
    },
  };
}
