import { promises as fs } from 'node:fs';
import { dirname } from 'node:path';
import type { Redis } from 'ioredis';
import { redisKeys } from '../../proxy/state/redis-keys.js';
import { HISTORY_LIMIT, type DeploymentRecord, type DeploymentStore } from './deployment-record.js';

/**
 * Deployment records in one JSON file (newest first), replaced atomically
 * (temp file, fsync, rename) so a crash never leaves half a history. Only the
 * lock holder writes, so there is no concurrent writer to merge with.
 */
export function createFileDeploymentStore(path: string): DeploymentStore {
  async function readAll(): Promise<DeploymentRecord[]> {
    let text: string;
    try {
      text = await fs.readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const parsed = JSON.parse(text) as unknown;
    if (!Array.isArray(parsed)) throw new Error(`${path} is not a deployment history`);
    return parsed as DeploymentRecord[];
  }

  return {
    location: path,
    async save(record) {
      const records = (await readAll()).filter((r) => r.id !== record.id);
      records.unshift(record);
      records.sort((a, b) => b.started_at.localeCompare(a.started_at));
      await fs.mkdir(dirname(path), { recursive: true });
      const temp = `${path}.${process.pid}.tmp`;
      const handle = await fs.open(temp, 'w', 0o600);
      try {
        await handle.writeFile(JSON.stringify(records.slice(0, HISTORY_LIMIT), null, 2) + '\n');
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fs.rename(temp, path);
    },
    async list(limit) {
      return (await readAll()).slice(0, limit);
    },
  };
}

/**
 * Deployment records in Redis (a hash by id plus a sorted set by start time),
 * shared by every host that deploys to the environment.
 */
export function createRedisDeploymentStore(redis: Redis, prefix: string): DeploymentStore {
  const { deployRecords: records, deployOrder: order } = redisKeys(prefix);
  return {
    location: `redis ${records}`,
    async save(record) {
      const score = Date.parse(record.started_at);
      await redis
        .multi()
        .hset(records, record.id, JSON.stringify(record))
        .zadd(order, score, record.id)
        .exec();
      const excess = await redis.zrange(order, 0, -(HISTORY_LIMIT + 1));
      if (excess.length > 0) {
        await redis
          .multi()
          .zrem(order, ...excess)
          .hdel(records, ...excess)
          .exec();
      }
    },
    async list(limit) {
      const ids = await redis.zrevrange(order, 0, limit - 1);
      if (ids.length === 0) return [];
      const values = await redis.hmget(records, ...ids);
      return values
        .filter((v): v is string => v !== null)
        .map((v) => JSON.parse(v) as DeploymentRecord);
    },
  };
}
