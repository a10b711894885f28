import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { redactUrl } from '../../common/logger.js';
import type { Slot } from '../../common/slot.js';
import {
  DEFAULT_COMMAND_TIMEOUT_MS,
  DEFAULT_RECONNECT_MAX_DELAY_MS,
  mayHaveRun,
  RedisConnections,
  storeError,
  type RedisConnectionSettings,
} from './redis-connection.js';
import { ListenerList } from './listeners.js';
import { historyFields, parseHistoryEntry, stateArgs } from './redis-codec.js';
import { redisKeys, type RedisKeys } from './redis-keys.js';
import { COMPARE_AND_SET, HEAL_FORK, SEED, scriptReply } from './redis-scripts.js';
import {
  initialState,
  assertValidSuccessor,
  invalidStateReason,
  sameState,
  type SlotState,
} from './slot-state.js';
import {
  StoreCorruptError,
  StoreOutcomeUnknownError,
  StoreUnavailableError,
  type CompareAndSetResult,
  type SlotStore,
} from './store.js';
import type { SwitchRecord } from './switch-record.js';

// The certificate layer (proxy/tls/) connects to Redis the same way and imports these from here.
export { describeRedisFailure, fastFailRedisOptions } from './redis-connection.js';

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

  private readonly keys: RedisKeys;
  private readonly logger: Logger;
  private readonly connections: RedisConnections;
  private readonly reconcileIntervalMs: number;
  private readonly historyMaxLength: number;
  private readonly restoreGraceMs: number;
  private readonly commandTimeoutMs: number;
  private readonly stateListeners: ListenerList<[SlotState]>;
  private readonly availabilityListeners: ListenerList<[boolean]>;

  /** The newest state this store has seen: what it restores into an emptied Redis. */
  private newest: SlotState | undefined;
  private up = false;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private reconciling: Promise<void> | undefined;
  private reconcileAgain = false;
  /** Last corruption reported by reconcile, so it is logged once, not every second. */
  private corruptReason: string | undefined;

  constructor(options: RedisStoreOptions) {
    this.keys = redisKeys(options.keyPrefix);
    this.logger = options.logger.child({ store: 'redis' });
    this.stateListeners = new ListenerList('slot state', this.logger);
    this.availabilityListeners = new ListenerList('store availability', this.logger);
    this.location = `${redactUrl(options.url)} (prefix ${options.keyPrefix})`;
    this.reconcileIntervalMs = options.reconcileIntervalMs ?? 1000;
    this.historyMaxLength = options.historyMaxLength ?? 1000;
    this.commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.restoreGraceMs =
      options.restoreGraceMs ??
      2 * this.reconcileIntervalMs +
        (options.reconnectMaxDelayMs ?? DEFAULT_RECONNECT_MAX_DELAY_MS);
    this.connections = new RedisConnections({
      url: options.url,
      commandTimeoutMs: options.commandTimeoutMs,
      reconnectMaxDelayMs: options.reconnectMaxDelayMs,
      channel: this.keys.slotChanged,
      logger: this.logger,
      resubscribeRetryMs: this.reconcileIntervalMs,
      events: {
        message: (channel, message) => this.onMessage(channel, message),
        commandsLost: () => this.setUp(false),
        ready: () => void this.reconcile(),
      },
    });
  }

  async init(defaultSlot: Slot): Promise<SlotState> {
    if (this.closed) throw new StoreUnavailableError('the store is closed');
    if (this.newest) return this.read();
    let state: SlotState;
    try {
      await this.connections.open();
      state = await this.seed(initialState(defaultSlot), false);
    } catch (error) {
      // Stop the background reconnects so init can simply be called again.
      await this.connections.drop();
      const mapped = storeError(error, `reading ${this.keys.slot}`, this.commandTimeoutMs);
      if (mapped instanceof StoreCorruptError) {
        this.logger.error({ err: mapped, key: this.keys.slot }, 'stored slot state is corrupt');
        throw mapped;
      }
      // connect() only says the connection closed; the socket error says why.
      const reason = this.connections.lastError ?? mapped.message;
      throw new StoreUnavailableError(`cannot reach redis at ${this.location}: ${reason}`);
    }
    this.newest = state;
    this.connections.watch();
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
    this.stateListeners.add(listener);
  }

  isUp(): boolean {
    return this.up;
  }

  onAvailability(listener: (up: boolean) => void): void {
    this.availabilityListeners.add(listener);
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
    await this.connections.close();
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
      const result = await run(this.connections.command);
      if (this.newest && this.connections.command.status === 'ready') this.setUp(true);
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
    this.stateListeners.emit(state);
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
        if (this.connections.command.status !== 'ready') {
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

  private setUp(up: boolean): void {
    if (this.closed && up) return;
    if (up === this.up) return;
    this.up = up;
    this.availabilityListeners.emit(up);
  }
}
