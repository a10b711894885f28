import { createHash } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { redactUrl } from '../../common/logger.js';
import { isSlot, type Slot } from '../../common/slot.js';
import {
  initialState,
  assertValidSuccessor,
  invalidStateReason,
  type SlotState,
} from './slot-state.js';
import {
  StoreCorruptError,
  StoreOutcomeUnknownError,
  StoreUnavailableError,
  type CompareAndSetResult,
  type SlotStore,
  type SwitchRecord,
} from './store.js';

/**
 * The Redis keys of one environment. Everything lives under the prefix so
 * several environments can share one Redis; the deploy lock builds its key
 * here too so the layout is written down in one place.
 */
export function redisKeys(prefix: string) {
  return {
    /** Hash: active, previous ('' for none), epoch, switched_at, actor. */
    slot: `${prefix}slot`,
    /** Pub/sub channel: the JSON state after every write. */
    slotChanged: `${prefix}slot:changed`,
    /** Set (with a TTL) while the state is being restored into an emptied Redis. */
    slotRestoring: `${prefix}slot:restoring`,
    /** Capped stream of SwitchRecord fields. */
    history: `${prefix}history`,
    /** The `togather deploy` lock. */
    deployLock: `${prefix}deploy:lock`,
  };
}

const DEFAULT_RECONNECT_MAX_DELAY_MS = 1000;
const DEFAULT_COMMAND_TIMEOUT_MS = 1000;

export interface RedisConnectionSettings {
  /** Every command fails after this long instead of waiting for a stalled server. */
  commandTimeoutMs?: number;
  /** Upper bound of the reconnect backoff. */
  reconnectMaxDelayMs?: number;
}

/**
 * ioredis options for a connection that fails fast: no offline queue, no
 * retried commands, a command timeout. An outage must turn into an error the
 * caller can answer with (503) at once, never into a request that hangs until
 * Redis is back. Reconnection runs in the background with a capped backoff.
 */
export function fastFailRedisOptions(settings: RedisConnectionSettings = {}): RedisOptions {
  const maxDelay = settings.reconnectMaxDelayMs ?? DEFAULT_RECONNECT_MAX_DELAY_MS;
  return {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: settings.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
    // A TCP (and TLS) handshake may take longer than a command on a remote Redis.
    connectTimeout: Math.max(settings.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS, 2000),
    retryStrategy: (attempt: number) => Math.min(50 * 2 ** attempt, maxDelay),
  };
}

/** A command that failed after it was sent (no answer in time, connection lost while waiting). */
function mayHaveRun(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return error.message === 'Command timed out' || error.message === 'Connection is closed.';
}

/** A Redis error reply that says the key holds something else than we wrote. */
function isWrongType(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('WRONGTYPE');
}

/**
 * Says in plain words why a Redis call failed. The text reaches operators
 * (logs, 503 answers of the admin API), so ioredis internals are translated.
 */
export function describeRedisFailure(error: unknown, commandTimeoutMs: number): string {
  if (!(error instanceof Error)) return String(error);
  const { message, name } = error;
  if (message.includes('enableOfflineQueue')) return 'redis is not connected';
  if (message === 'Command timed out') return `redis did not answer within ${commandTimeoutMs} ms`;
  if (message === 'Connection is closed.' || name === 'MaxRetriesPerRequestError') {
    return 'the connection to redis was lost';
  }
  if (name === 'AbortError') return 'the connection to redis was lost';
  if (name === 'ReplyError') return `redis refused the command: ${message}`;
  return message;
}

/**
 * Maps a failed Redis call to the store's errors: a key of the wrong type is a
 * foreign or corrupt key; anything else (closed connection, timeout, LOADING,
 * READONLY, OOM...) means the store cannot serve us now.
 */
export function storeError(error: unknown, what: string, commandTimeoutMs: number): Error {
  if (error instanceof StoreCorruptError || error instanceof StoreUnavailableError) return error;
  if (isWrongType(error)) return new StoreCorruptError(`${what}: ${(error as Error).message}`);
  return new StoreUnavailableError(describeRedisFailure(error, commandTimeoutMs));
}

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
const SEED = new LuaScript(
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
const COMPARE_AND_SET = new LuaScript(
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
const HEAL_FORK = new LuaScript(
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

function sameState(a: SlotState, b: SlotState): boolean {
  return (
    a.active === b.active &&
    a.previous === b.previous &&
    a.epoch === b.epoch &&
    a.switched_at === b.switched_at &&
    a.actor === b.actor
  );
}

function stateArgs(state: SlotState): string[] {
  return [
    state.active,
    state.previous ?? '',
    String(state.epoch),
    state.switched_at,
    state.actor,
    JSON.stringify(state),
  ];
}

function pairs(flat: unknown[]): Map<string, string> {
  const fields = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) fields.set(String(flat[i]), String(flat[i + 1]));
  return fields;
}

/** Reads the slot hash's fields; throws StoreCorruptError when they are not a slot state. */
export function parseSlotHash(fields: Map<string, string>, key: string): SlotState {
  const epochText = fields.get('epoch');
  const previous = fields.get('previous');
  const candidate = {
    active: fields.get('active'),
    previous: previous === '' ? null : previous,
    epoch: epochText !== undefined && /^\d+$/.test(epochText) ? Number(epochText) : epochText,
    switched_at: fields.get('switched_at'),
    actor: fields.get('actor'),
  };
  const reason = invalidStateReason(candidate);
  if (reason) throw new StoreCorruptError(`${key} is not a slot state: ${reason}`);
  return candidate as SlotState;
}

/** Decodes a script reply into the state it carries (or `written`). */
function scriptReply(
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

const RESULTS: readonly SwitchRecord['result'][] = [
  'switched',
  'unchanged',
  'refused',
  'conflict',
  'unavailable',
];

function historyFields(record: SwitchRecord): string[] {
  const fields = [
    'time',
    record.time,
    'actor',
    record.actor,
    'from',
    record.from ?? '',
    'to',
    record.to,
    'epoch',
    String(record.epoch),
    'result',
    record.result,
  ];
  if (record.reason !== undefined) fields.push('reason', record.reason);
  return fields;
}

function parseHistoryEntry(flat: unknown[]): SwitchRecord | undefined {
  const f = pairs(flat);
  const from = f.get('from');
  const to = f.get('to');
  const epoch = Number(f.get('epoch'));
  const result = f.get('result') as SwitchRecord['result'] | undefined;
  const time = f.get('time');
  const actor = f.get('actor');
  if (time === undefined || actor === undefined || !isSlot(to)) return undefined;
  if (from !== '' && !isSlot(from)) return undefined;
  if (!Number.isSafeInteger(epoch) || result === undefined || !RESULTS.includes(result)) {
    return undefined;
  }
  const record: SwitchRecord = { time, actor, from: from === '' ? null : from, to, epoch, result };
  const reason = f.get('reason');
  if (reason !== undefined) record.reason = reason;
  return record;
}

/** Puts the successful switches of a newest-first list in descending epoch order, in place. */
function inEpochOrder(records: SwitchRecord[]): SwitchRecord[] {
  const places: number[] = [];
  records.forEach((record, i) => {
    if (record.result === 'switched') places.push(i);
  });
  const switches = places.map((i) => records[i]!).sort((a, b) => b.epoch - a.epoch);
  places.forEach((place, i) => (records[place] = switches[i]!));
  return records;
}

export interface RedisStoreOptions extends RedisConnectionSettings {
  url: string;
  keyPrefix: string;
  logger: Logger;
  /** How often the stored state is read to heal a missed notification. */
  reconcileIntervalMs?: number;
  /** Approximate cap of the audit history stream. */
  historyMaxLength?: number;
  /**
   * How long switches are refused after the state was restored into a Redis
   * that lost it, so every proxy can put back what it knows first. Defaults
   * to two reconcile intervals plus the longest reconnect delay.
   */
  restoreGraceMs?: number;
}

/**
 * The fleet's slot state in Redis: one hash changed only by an atomic
 * compare-and-set on epoch, each change published on a channel, and a read
 * every `reconcileIntervalMs` so a proxy that missed a message (subscriber
 * reconnecting, network blip) still converges.
 *
 * Two connections: commands (fail fast, so an outage becomes a 503 at once)
 * and a subscriber. Availability follows the command connection and the
 * outcome of the reconcile reads, so a stalled server counts as down too.
 *
 * A Redis that comes back without its data (no persistence) is given back the
 * newest state any proxy knows: each store restores its own newest state if
 * the stored one is missing or older, switches pause for a short grace so all
 * proxies get their turn, and a leftover fork (two states of one epoch) is
 * healed by re-publishing the stored state under the next epoch.
 */
export class RedisStore implements SlotStore {
  readonly kind = 'redis' as const;
  readonly location: string;

  private readonly keys: ReturnType<typeof redisKeys>;
  private readonly logger: Logger;
  private readonly command: Redis;
  private readonly subscriber: Redis;
  private readonly reconcileIntervalMs: number;
  private readonly historyMaxLength: number;
  private readonly restoreGraceMs: number;
  private readonly commandTimeoutMs: number;
  private readonly stateListeners: ((state: SlotState) => void)[] = [];
  private readonly availabilityListeners: ((up: boolean) => void)[] = [];

  /** The newest state this store has seen: what it restores into an emptied Redis. */
  private newest: SlotState | undefined;
  private up = false;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private reconciling: Promise<void> | undefined;
  private reconcileAgain = false;
  /** The last socket-level error (ECONNREFUSED...), for the start-up error. */
  private lastConnectionError: string | undefined;
  /** Last corruption reported by reconcile, so it is logged once, not every second. */
  private corruptReason: string | undefined;

  constructor(options: RedisStoreOptions) {
    this.keys = redisKeys(options.keyPrefix);
    this.logger = options.logger.child({ store: 'redis' });
    this.location = `${redactUrl(options.url)} (prefix ${options.keyPrefix})`;
    this.reconcileIntervalMs = options.reconcileIntervalMs ?? 1000;
    this.historyMaxLength = options.historyMaxLength ?? 1000;
    this.commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.restoreGraceMs =
      options.restoreGraceMs ??
      2 * this.reconcileIntervalMs +
        (options.reconnectMaxDelayMs ?? DEFAULT_RECONNECT_MAX_DELAY_MS);
    const redisOptions = fastFailRedisOptions(options);
    this.command = new Redis(options.url, { ...redisOptions, connectionName: 'togather-proxy' });
    this.subscriber = new Redis(options.url, {
      ...redisOptions,
      connectionName: 'togather-proxy-sub',
      // ioredis's own resubscribe leaves its promise unhandled: a connection that
      // drops again at that moment rejects it and the unhandled rejection ends
      // the process. The 'ready' handler below resubscribes instead.
      autoResubscribe: false,
    });
    this.watchConnections();
  }

  async init(defaultSlot: Slot): Promise<SlotState> {
    if (this.closed) throw new StoreUnavailableError('the store is closed');
    if (this.newest) return this.read();
    let state: SlotState;
    this.lastConnectionError = undefined;
    try {
      await Promise.all([this.command.connect(), this.subscriber.connect()]);
      await this.subscriber.subscribe(this.keys.slotChanged);
      state = await this.seed(initialState(defaultSlot), false);
    } catch (error) {
      // Stop the background reconnects so init can simply be called again.
      await Promise.all([disconnected(this.command), disconnected(this.subscriber)]);
      const mapped = storeError(error, `reading ${this.keys.slot}`, this.commandTimeoutMs);
      if (mapped instanceof StoreCorruptError) {
        this.logger.error({ err: mapped, key: this.keys.slot }, 'stored slot state is corrupt');
        throw mapped;
      }
      // connect() only says the connection closed; the socket error says why.
      const reason = this.lastConnectionError ?? mapped.message;
      throw new StoreUnavailableError(`cannot reach redis at ${this.location}: ${reason}`);
    }
    this.newest = state;
    this.setUp(true);
    this.logger.info(
      { location: this.location, active: state.active, epoch: state.epoch },
      'slot state loaded from redis',
    );
    this.timer = setInterval(() => void this.reconcile(), this.reconcileIntervalMs);
    this.timer.unref();
    return state;
  }

  /**
   * Reads the stored state. A Redis that lost it (restarted without
   * persistence) gets back the newest state this proxy knows.
   */
  async read(): Promise<SlotState> {
    return this.seed(this.requireNewest(), true);
  }

  async compareAndSet(
    expectedEpoch: number,
    next: SlotState,
    record?: SwitchRecord,
  ): Promise<CompareAndSetResult> {
    assertValidSuccessor(expectedEpoch, next);
    for (let attempt = 0; ; attempt++) {
      // Redis's clock, not ours: the write may happen only well before this call
      // gives up on it (half the command timeout: timers fire a little early and
      // a held write may be delivered the moment the call gives up).
      const [seconds, micros] = await this.call('reading the redis clock', (redis) => redis.time());
      const deadline =
        Number(seconds) * 1000 +
        Math.floor(Number(micros) / 1000) +
        Math.floor(this.commandTimeoutMs / 2);
      const reply = scriptReply(
        await this.call(
          'switching the slot',
          (redis) =>
            COMPARE_AND_SET.run(redis, [
              this.keys.slot,
              this.keys.slotRestoring,
              this.keys.history,
              String(expectedEpoch),
              ...stateArgs(next),
              this.keys.slotChanged,
              String(deadline),
              String(this.historyMaxLength),
              ...(record ? historyFields(record) : []),
            ]),
          true,
        ),
        this.keys.slot,
      );
      if (reply.code === -4) {
        throw new StoreUnavailableError(
          `the switch reached redis too late (over ${Math.floor(this.commandTimeoutMs / 2)} ms) and was not applied`,
        );
      }
      if (reply.code === 1) {
        this.remember(next);
        return record ? { ok: true, state: next, recorded: true } : { ok: true, state: next };
      }
      if (reply.code === 0) {
        this.remember(reply.state);
        return { ok: false, state: reply.state };
      }
      if (reply.code === -3) {
        throw new StoreUnavailableError(
          `the slot state is being restored after redis lost it; switching resumes within ${reply.remainingMs} ms`,
        );
      }
      // The key is gone (Redis restarted empty): put back what we know, then decide once more
      // (which answers "being restored" until the other proxies had their chance).
      const restored = await this.seed(this.requireNewest(), true);
      if (attempt > 0) return { ok: false, state: restored };
    }
  }

  onState(listener: (state: SlotState) => void): void {
    this.stateListeners.push(listener);
  }

  isUp(): boolean {
    return this.up;
  }

  onAvailability(listener: (up: boolean) => void): void {
    this.availabilityListeners.push(listener);
  }

  async appendHistory(record: SwitchRecord): Promise<void> {
    await this.call('appending to the switch history', (redis) =>
      redis.xadd(
        this.keys.history,
        'MAXLEN',
        '~',
        String(this.historyMaxLength),
        '*',
        ...historyFields(record),
      ),
    );
  }

  /**
   * The newest records first. Proxies append after their switch committed, so
   * two proxies switching within a millisecond may append in the other order;
   * the epochs are the commit order, so successful switches are listed by
   * epoch (each in one of the places the successful switches occupy).
   */
  async history(limit: number): Promise<SwitchRecord[]> {
    const count = Math.min(Math.max(Math.trunc(limit), 0), this.historyMaxLength);
    if (count === 0) return [];
    const entries = await this.call('reading the switch history', (redis) =>
      redis.xrevrange(this.keys.history, '+', '-', 'COUNT', count),
    );
    const records: SwitchRecord[] = [];
    for (const [id, fields] of entries) {
      const record = parseHistoryEntry(fields);
      if (record) records.push(record);
      else this.logger.warn({ key: this.keys.history, id }, 'skipping an unreadable history entry');
    }
    return inEpochOrder(records);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.all([quit(this.command), quit(this.subscriber)]);
    this.setUp(false);
  }

  private requireNewest(): SlotState {
    if (!this.newest) throw new Error('RedisStore used before init()');
    return this.newest;
  }

  /**
   * Runs one command, mapping failures to store errors and tracking
   * availability. A `write` that was sent and never answered is reported as
   * StoreOutcomeUnknownError.
   */
  private async call<T>(
    what: string,
    run: (redis: Redis) => Promise<T>,
    write = false,
  ): Promise<T> {
    try {
      const result = await run(this.command);
      if (this.newest && this.command.status === 'ready') this.setUp(true);
      return result;
    } catch (error) {
      let mapped = storeError(error, what, this.commandTimeoutMs);
      if (write && mapped instanceof StoreUnavailableError && mayHaveRun(error)) {
        mapped = new StoreOutcomeUnknownError(mapped.message);
      }
      if (mapped instanceof StoreUnavailableError) this.setUp(false);
      throw mapped;
    }
  }

  /**
   * Reads the state, writing `candidate` if the key is absent or older: the
   * initial state at init, else (`restore`) the newest state this store knows.
   */
  private async seed(candidate: SlotState, restore: boolean): Promise<SlotState> {
    const reply = scriptReply(
      await this.call('reading the slot state', (redis) =>
        SEED.run(redis, [
          this.keys.slot,
          this.keys.slotRestoring,
          ...stateArgs(candidate),
          this.keys.slotChanged,
          String(restore ? this.restoreGraceMs : 0),
        ]),
      ),
      this.keys.slot,
    );
    if (reply.code === 0) {
      this.remember(reply.state);
      return reply.state;
    }
    if (reply.code === 1 && restore) {
      this.logger.warn(
        {
          key: this.keys.slot,
          active: candidate.active,
          epoch: candidate.epoch,
          switchesPausedMs: this.restoreGraceMs,
        },
        'redis had lost the slot state or held an older one: restored the newest known state',
      );
    }
    this.remember(candidate);
    return candidate;
  }

  private async healFork(stored: SlotState, known: SlotState): Promise<SlotState> {
    const bumped: SlotState = { ...stored, epoch: stored.epoch + 1 };
    const reply = await this.call('healing a forked slot state', (redis) =>
      HEAL_FORK.run(redis, [
        this.keys.slot,
        ...stateArgs(stored).slice(0, 5),
        String(bumped.epoch),
        JSON.stringify(bumped),
        this.keys.slotChanged,
      ]),
    );
    if (!Array.isArray(reply) || reply[0] !== 1) return this.read();
    this.logger.warn(
      { key: this.keys.slot, stored, known, epoch: bumped.epoch },
      'two slot states shared one epoch after redis lost data: re-published the stored one under the next epoch',
    );
    this.remember(bumped);
    return bumped;
  }

  private remember(state: SlotState): void {
    if (!this.newest || state.epoch > this.newest.epoch) this.newest = state;
  }

  private deliver(state: SlotState): void {
    this.remember(state);
    for (const listener of this.stateListeners) {
      try {
        listener(state);
      } catch (error) {
        this.logger.error({ err: error }, 'a slot state listener failed');
      }
    }
  }

  /** Reads the stored state and hands it to the listeners; runs every interval and on reconnect. */
  private reconcile(): Promise<void> {
    if (this.closed || !this.newest) return Promise.resolve();
    if (this.reconciling) {
      this.reconcileAgain = true;
      return this.reconciling;
    }
    this.reconciling = (async () => {
      do {
        this.reconcileAgain = false;
        if (this.command.status !== 'ready') {
          this.setUp(false);
          continue;
        }
        try {
          const known = this.requireNewest();
          let state = await this.read();
          if (state.epoch === known.epoch && !sameState(state, known)) {
            state = await this.healFork(state, known);
          }
          if (this.corruptReason)
            this.logger.info({ key: this.keys.slot }, 'slot state readable again');
          this.corruptReason = undefined;
          this.deliver(state);
        } catch (error) {
          if (error instanceof StoreCorruptError && error.message !== this.corruptReason) {
            this.corruptReason = error.message;
            this.logger.error({ err: error }, 'stored slot state is corrupt: not applied');
          }
          // Unavailability was recorded by call(); the outage itself is logged by the connection.
        }
      } while (this.reconcileAgain && !this.closed);
    })().finally(() => {
      this.reconciling = undefined;
    });
    return this.reconciling;
  }

  private onMessage(channel: string, message: string): void {
    if (channel !== this.keys.slotChanged) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(message);
    } catch {
      parsed = undefined;
    }
    const reason = invalidStateReason(parsed);
    if (reason) {
      this.logger.warn({ channel, reason }, 'ignoring an unreadable slot notification');
      return;
    }
    this.deliver(parsed as SlotState);
  }

  private watchConnections(): void {
    this.subscriber.on('message', (channel: string, message: string) =>
      this.onMessage(channel, message),
    );
    for (const [role, redis] of [
      ['commands', this.command],
      ['subscriber', this.subscriber],
    ] as const) {
      let lost = false;
      // Without an error listener ioredis prints every failed reconnect to the console.
      redis.on('error', (error: Error) => {
        this.lastConnectionError = error.message;
        if (!this.newest || this.closed) return;
        if (lost) this.logger.debug({ connection: role, err: error.message }, 'redis still down');
        else this.logger.warn({ connection: role, err: error.message }, 'redis connection error');
      });
      redis.on('close', () => {
        if (!this.newest || this.closed) return;
        if (!lost) this.logger.warn({ connection: role }, 'redis connection lost; reconnecting');
        lost = true;
        if (role === 'commands') this.setUp(false);
      });
      // Catch up at once on whatever changed while this connection was down.
      redis.on('ready', () => {
        this.lastConnectionError = undefined;
        if (!this.newest || this.closed) return;
        if (lost) this.logger.info({ connection: role }, 'redis connection restored');
        lost = false;
        if (role === 'subscriber') this.resubscribe();
        void this.reconcile();
      });
    }
  }

  /** Subscribes a reconnected subscriber again; a failure waits for the next reconnect. */
  private resubscribe(): void {
    this.subscriber.subscribe(this.keys.slotChanged).catch((error: unknown) => {
      this.logger.debug(
        { err: describeRedisFailure(error, this.commandTimeoutMs) },
        'redis resubscribe failed; retrying',
      );
      // A connection that stays up (the command timed out) gets another try;
      // a dropped one resubscribes on its next 'ready'.
      if (this.closed || this.subscriber.status !== 'ready') return;
      setTimeout(() => {
        if (!this.closed && this.subscriber.status === 'ready') this.resubscribe();
      }, this.reconcileIntervalMs).unref();
    });
  }

  private setUp(up: boolean): void {
    if (this.closed && up) return;
    if (up === this.up) return;
    this.up = up;
    for (const listener of this.availabilityListeners) {
      try {
        listener(up);
      } catch (error) {
        this.logger.error({ err: error }, 'a store availability listener failed');
      }
    }
  }
}

/** Closes a connection politely when it is up, and stops its reconnect loop in any case. */
async function quit(redis: Redis): Promise<void> {
  if (redis.status === 'ready') {
    await redis.quit().catch(() => undefined);
  }
  redis.disconnect();
}

/** Drops a connection without reconnecting and waits until ioredis has let go of it. */
async function disconnected(redis: Redis): Promise<void> {
  const open = ['connecting', 'connect', 'ready'].includes(redis.status);
  const ended = open
    ? new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        redis.once('end', () => {
          clearTimeout(timer);
          resolve();
        });
      })
    : Promise.resolve();
  redis.disconnect();
  await ended;
}
