import type { Redis } from 'ioredis';
import {
  holdLock,
  isLockOwner,
  LockHeldError,
  newOwner,
  unreadableOwner,
  type DeployLock,
  type LockOwner,
} from './lock.js';

// Renew and release only when the stored value is still ours (token match):
// a lock that expired and was taken by another deploy is never touched.
const RENEW = `
local value = redis.call('GET', KEYS[1])
if not value then return 0 end
local ok, owner = pcall(cjson.decode, value)
if not ok or owner.token ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
`;
const RELEASE = `
local value = redis.call('GET', KEYS[1])
if not value then return 0 end
local ok, owner = pcall(cjson.decode, value)
if not ok or owner.token ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
`;

export interface RedisLockOptions {
  redis: Redis;
  /** Full key: `redisKeys(prefix).deployLock` (proxy/state/redis-keys.ts) for the deploy lock. */
  key: string;
  ttlMs: number;
}

/** The deploy lock in Redis: `SET key owner NX PX ttl`, renewed while the deploy runs. */
export function createRedisLock(options: RedisLockOptions): DeployLock {
  const { redis, key, ttlMs } = options;

  async function holder(): Promise<{ owner: LockOwner; expiresInMs: number } | undefined> {
    const [value, pttl] = await Promise.all([redis.get(key), redis.pttl(key)]);
    if (value === null) return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch {
      parsed = undefined;
    }
    const owner = isLockOwner(parsed) ? parsed : unreadableOwner('value');
    return { owner, expiresInMs: Math.max(0, pttl) };
  }

  return {
    kind: 'redis',
    location: `redis key ${key}`,
    holder,
    async acquire(purpose) {
      const owner = newOwner(purpose);
      const set = await redis.set(key, JSON.stringify(owner), 'PX', ttlMs, 'NX');
      if (set !== 'OK') {
        const current = await holder();
        if (!current) return this.acquire(purpose); // expired between SET and GET
        throw new LockHeldError(current.owner, current.expiresInMs);
      }
      return holdLock(owner, ttlMs, {
        lostReason: `the deploy lock ${key} expired or was taken over`,
        renew: async () => (await redis.eval(RENEW, 1, key, owner.token, String(ttlMs))) === 1,
        async remove() {
          // Unreachable Redis throws: the lock expires on its own after ttlMs.
          await redis.eval(RELEASE, 1, key, owner.token);
        },
      });
    },
  };
}
