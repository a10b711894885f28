/**
 * The Redis keys of one environment: the one place their layout is written
 * down. Everything lives under the prefix (REDIS_KEY_PREFIX) so several
 * environments can share one Redis. The layout is part of the contract
 * (docs/architecture.md, "Slot state"): a fleet runs mixed versions during a
 * rollout, so a key is never renamed.
 */
export interface RedisKeys {
  /** Hash: active, previous ('' for none), epoch, switched_at, actor. */
  readonly slot: string;
  /** Pub/sub channel: the JSON state after every write. */
  readonly slotChanged: string;
  /** Set (with a TTL) while the state is being restored into an emptied Redis. */
  readonly slotRestoring: string;
  /** Capped stream of switch records (proxy/state/switch-record.ts). */
  readonly history: string;
  /** String: the `togather deploy` lock (owner JSON, TTL renewed). */
  readonly deployLock: string;
  /** Hash: `togather deploy`'s records by id. */
  readonly deployRecords: string;
  /** Sorted set: the deploy record ids by start time. */
  readonly deployOrder: string;
}

export function redisKeys(prefix: string): RedisKeys {
  return {
    slot: `${prefix}slot`,
    slotChanged: `${prefix}slot:changed`,
    slotRestoring: `${prefix}slot:restoring`,
    history: `${prefix}history`,
    deployLock: `${prefix}deploy:lock`,
    deployRecords: `${prefix}deploy:records`,
    deployOrder: `${prefix}deploy:order`,
  };
}
