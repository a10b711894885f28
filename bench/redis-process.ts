import { RedisProcess } from '../harness/redis-process.js';
import { startProcess } from './processes.js';

export type { RedisProcess };

/** A private redis-server on a free loopback port, without persistence, stopped with the benchmark. */
export function startRedis(): Promise<RedisProcess> {
  return RedisProcess.start({ launch: startProcess });
}
