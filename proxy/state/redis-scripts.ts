import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { pairs, parseSlotHash } from './redis-codec.js';
import type { SlotState } from './slot-state.js';
import { StoreCorruptError, StoreUnavailableError } from './store.js';

/*
 * The Lua scripts of the Redis store: every write of the slot state is one
 * of them, so it is atomic on the server (checked, written, published and,
 * for a switch, recorded in one step).
 */

/** A Lua script run by EVALSHA, falling back to EVAL after a restart emptied the script cache. */
class LuaScript {
  private readonly sha: string;

  constructor(
    private readonly source: string,
    private readonly keyCount: number,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(redis: Redis, args: (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, this.keyCount, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return redis.eval(this.source, this.keyCount, ...args);
    }
  }
}

/*
 * The scripts answer {code, ...} where code is
 *   1  written (and published)
 *   0  not written; the rest is HGETALL of the key
 *  -1  the key holds another type (the rest names it): never touched
 *  -2  (compare-and-set only) the key does not exist
 *  -3  (compare-and-set only) the state is being restored; the rest is the ms left
 *  -4  (compare-and-set only) Redis's clock is past the caller's deadline: not written
 */

/**
 * Writes the candidate state when the key is absent (first start, or a Redis
 * that restarted without persistence) or holds an older epoch than the
 * candidate (it was re-seeded from a proxy that knew less): the fleet's
 * newest known state wins, so every proxy can converge. Otherwise reads.
 *
 * A restore (grace > 0) also sets the restoring marker for the grace period:
 * until every proxy has had the chance to put back what it knows, a switch on
 * top of a re-seeded older state would reuse an epoch some proxy already holds.
 * KEYS: slot hash, restoring marker. ARGV: active, previous, epoch,
 * switched_at, actor, json, channel, grace ms.
 */
export const SEED = new LuaScript(
  `
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' and kind ~= 'hash' then return {-1, kind} end
local write = kind == 'none'
if not write then
  local stored = redis.call('HGET', KEYS[1], 'epoch')
  if stored and string.match(stored, '^%d+$') and tonumber(stored) < tonumber(ARGV[3]) then
    write = true
  end
end
if write then
  redis.call('HSET', KEYS[1], 'active', ARGV[1], 'previous', ARGV[2], 'epoch', ARGV[3],
    'switched_at', ARGV[4], 'actor', ARGV[5])
  if tonumber(ARGV[8]) > 0 then redis.call('SET', KEYS[2], '1', 'PX', ARGV[8]) end
  redis.call('PUBLISH', ARGV[7], ARGV[6])
  return {1}
end
local reply = redis.call('HGETALL', KEYS[1])
table.insert(reply, 1, 0)
return reply
`,
  2,
);

/**
 * Compare-and-set on epoch: all fields written, the change published and its
 * audit entry appended in one atomic step, so no proxy can see a half-written
 * state or miss the order, and no committed switch can miss from the history
 * (even when the answer to the proxy that made it is lost).
 * Refused (-4) once Redis's clock is past the deadline: a compare-and-set held
 * up in the network after its caller gave up (and answered the switch as
 * failed) must not apply when the network heals.
 * KEYS: slot hash, restoring marker, history stream. ARGV: expected epoch,
 * active, previous, epoch, switched_at, actor, json, channel, deadline (Redis
 * time, ms), history cap, then the audit entry's field/value pairs, if any.
 */
export const COMPARE_AND_SET = new LuaScript(
  `
local now = redis.call('TIME')
if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[9]) then
  return {-4}
end
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'none' then return {-2} end
if kind ~= 'hash' then return {-1, kind} end
local restoring = redis.call('PTTL', KEYS[2])
if restoring > 0 then return {-3, restoring} end
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then
  local reply = redis.call('HGETALL', KEYS[1])
  table.insert(reply, 1, 0)
  return reply
end
redis.call('HSET', KEYS[1], 'active', ARGV[2], 'previous', ARGV[3], 'epoch', ARGV[4],
  'switched_at', ARGV[5], 'actor', ARGV[6])
redis.call('PUBLISH', ARGV[8], ARGV[7])
if #ARGV > 10 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[10], '*', unpack(ARGV, 11, #ARGV))
end
return {1}
`,
  3,
);

/**
 * Heals a fork: two different states with the same epoch, which only a Redis
 * that lost data can produce (a proxy re-seeded it with an older state and
 * switched on top while another proxy still holds the lost state of that
 * epoch). Proxies apply only newer epochs, so the stored state is rewritten
 * unchanged under the next epoch, and everyone applies it. Done only if the
 * stored state is still exactly the one seen, so a real switch is never lost.
 * KEYS: slot hash. ARGV: seen active, previous, epoch, switched_at, actor,
 * then the new epoch, json, channel.
 */
export const HEAL_FORK = new LuaScript(
  `
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then return {0} end
local f = redis.call('HMGET', KEYS[1], 'active', 'previous', 'epoch', 'switched_at', 'actor')
for i = 1, 5 do
  if f[i] ~= ARGV[i] then return {0} end
end
redis.call('HSET', KEYS[1], 'epoch', ARGV[6])
redis.call('PUBLISH', ARGV[8], ARGV[7])
return {1}
`,
  1,
);

/** Decodes a script reply into the state it carries (or `written`). */
export function scriptReply(
  reply: unknown,
  key: string,
):
  | { code: 1 }
  | { code: -2 }
  | { code: -3; remainingMs: number }
  | { code: -4 }
  | { code: 0; state: SlotState } {
  if (!Array.isArray(reply) || typeof reply[0] !== 'number') {
    throw new StoreUnavailableError(`unexpected reply from redis for ${key}`);
  }
  const [code, ...rest] = reply as [number, ...unknown[]];
  if (code === 1 || code === -2 || code === -4) return { code };
  if (code === -3) return { code, remainingMs: Number(rest[0]) };
  if (code === -1) {
    throw new StoreCorruptError(`${key} holds a ${String(rest[0])}, not a slot state hash`);
  }
  return { code: 0, state: parseSlotHash(pairs(rest), key) };
}
