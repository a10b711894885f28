import { PassThrough } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../common/logger.js';
import { redisKeys } from '../../../proxy/state/redis-keys.js';
import { RedisStore, type RedisStoreOptions } from '../../../proxy/state/redis-store.js';
import { otherSlot, type Slot } from '../../../common/slot.js';
import type { SlotState } from '../../../proxy/state/slot-state.js';
import { StoreCorruptError, StoreUnavailableError } from '../../../proxy/state/store.js';
import type { SwitchRecord } from '../../../proxy/state/switch-record.js';
import { until, valueOf } from '../../support/wait.js';
import { RedisProcess } from '../../../harness/redis-process.js';

let redis: RedisProcess;
let raw: Redis;
const stores: RedisStore[] = [];
let prefixCounter = 0;

beforeAll(async () => {
  redis = await RedisProcess.start();
  raw = new Redis(redis.url, { lazyConnect: true });
  // It reconnects by itself after the outages the tests cause; nothing to report.
  raw.on('error', () => undefined);
  await raw.connect();
});

afterAll(async () => {
  raw.disconnect();
  await redis.stop();
});

afterEach(async () => {
  await Promise.all(stores.splice(0).map((store) => store.close()));
  if (!redis.running) await redis.restart();
});

/** A fresh key prefix per test: the tests share one redis-server. */
function freshPrefix(): string {
  prefixCounter += 1;
  return `test${prefixCounter}-${process.pid}:`;
}

interface LogCapture {
  lines: () => Record<string, unknown>[];
}

function makeStore(
  prefix: string,
  overrides: Partial<RedisStoreOptions> = {},
): { store: RedisStore; logs: LogCapture } {
  const stream = new PassThrough();
  let text = '';
  stream.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
  const logger = createLogger({ level: 'debug', destination: stream });
  const store = new RedisStore({
    url: redis.url,
    keyPrefix: prefix,
    logger,
    reconcileIntervalMs: 1000,
    reconnectMaxDelayMs: 200,
    ...overrides,
  });
  stores.push(store);
  const logs = {
    lines: () =>
      text
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
  return { store, logs };
}

function next(from: SlotState, active: Slot, actor = 'test'): SlotState {
  return {
    active,
    previous: from.active,
    epoch: from.epoch + 1,
    switched_at: new Date().toISOString(),
    actor,
  };
}

async function storedHash(prefix: string): Promise<Record<string, string>> {
  return raw.hgetall(redisKeys(prefix).slot);
}

describe('RedisStore init', () => {
  it('writes the initial state only when absent: two stores racing end with one state', async () => {
    const prefix = freshPrefix();
    const { store: a } = makeStore(prefix);
    const { store: b } = makeStore(prefix);
    const [sa, sb] = await Promise.all([a.init('blue'), b.init('green')]);
    expect(sa).toEqual(sb);
    expect(sa.epoch).toBe(0);
    expect(sa.previous).toBeNull();
    expect(sa.actor).toBe('init');
    expect(await storedHash(prefix)).toEqual({
      active: sa.active,
      previous: '',
      epoch: '0',
      switched_at: sa.switched_at,
      actor: 'init',
    });
    expect(a.isUp()).toBe(true);
    expect(a.kind).toBe('redis');
  });

  it('keeps an existing state and never writes the default over it', async () => {
    const prefix = freshPrefix();
    const { store: a } = makeStore(prefix);
    const first = await a.init('blue');
    const switched = next(first, 'green');
    expect((await a.compareAndSet(0, switched)).ok).toBe(true);
    const { store: b } = makeStore(prefix);
    expect(await b.init('blue')).toEqual(switched);
    expect(await b.read()).toEqual(switched);
    // A second init reads again and keeps the connections.
    expect(await b.init('green')).toEqual(switched);
    expect(b.isUp()).toBe(true);
  });

  it('refuses a foreign key of another type with StoreCorruptError, logs it and leaves it', async () => {
    const prefix = freshPrefix();
    await raw.set(redisKeys(prefix).slot, 'someone else');
    const { store, logs } = makeStore(prefix);
    const error = await store.init('blue').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreCorruptError);
    expect((error as Error).message).toBe(`${prefix}slot holds a string, not a slot state hash`);
    expect(await raw.get(redisKeys(prefix).slot)).toBe('someone else');
    expect(logs.lines().some((l) => l.msg === 'stored slot state is corrupt')).toBe(true);
  });

  it('refuses a hash that is not a slot state and leaves it', async () => {
    const prefix = freshPrefix();
    const key = redisKeys(prefix).slot;
    await raw.hset(key, {
      active: 'purple',
      previous: '',
      epoch: '3',
      switched_at: 'x',
      actor: 'a',
    });
    const { store } = makeStore(prefix);
    await expect(store.init('blue')).rejects.toThrow(
      new StoreCorruptError(`${key} is not a slot state: active is not blue or green`),
    );
    await raw.hset(key, { active: 'blue', epoch: 'seven' });
    await expect(store.init('blue')).rejects.toThrow(
      `${key} is not a slot state: epoch is not a non-negative integer`,
    );
    await raw.hset(key, { epoch: '7', switched_at: 'yesterday' });
    await expect(store.init('blue')).rejects.toThrow(
      `${key} is not a slot state: switched_at is not a date`,
    );
    expect((await raw.hgetall(key)).switched_at).toBe('yesterday');
  });

  it('throws StoreUnavailableError promptly when redis is not there, and can init later', async () => {
    const prefix = freshPrefix();
    await redis.kill();
    const { store } = makeStore(prefix);
    const started = Date.now();
    await expect(store.init('blue')).rejects.toThrow(
      new StoreUnavailableError(
        `cannot reach redis at ${redis.url} (prefix ${prefix}): connect ECONNREFUSED 127.0.0.1:${redis.port}`,
      ),
    );
    expect(Date.now() - started).toBeLessThan(2000);
    expect(store.isUp()).toBe(false);
    await redis.restart();
    expect((await store.init('green')).active).toBe('green');
    expect(store.isUp()).toBe(true);
  });

  it('shows its location without the password', () => {
    const store = new RedisStore({
      url: 'redis://user:hunter2-secret@127.0.0.1:1/0',
      keyPrefix: 'prod:',
      logger: createLogger({ level: 'silent' }),
    });
    stores.push(store);
    expect(store.location).toBe('redis://user:***@127.0.0.1:1/0 (prefix prod:)');
  });
});

describe('RedisStore compare-and-set', () => {
  it('lets exactly one of 20 concurrent writers on the same epoch win', async () => {
    const prefix = freshPrefix();
    const { store: a } = makeStore(prefix);
    const { store: b } = makeStore(prefix);
    const initial = await a.init('blue');
    await b.init('blue');
    const attempts = Array.from({ length: 20 }, (_, i) => {
      const store = i % 2 === 0 ? a : b;
      return store.compareAndSet(0, next(initial, i % 4 < 2 ? 'green' : 'blue', `writer-${i}`));
    });
    const results = await Promise.all(attempts);
    const winners = results.filter((r) => r.ok);
    expect(winners).toHaveLength(1);
    const winner = winners[0]!.state;
    expect(winner.epoch).toBe(1);
    for (const result of results.filter((r) => !r.ok)) expect(result.state).toEqual(winner);
    expect(await a.read()).toEqual(winner);
  });

  it('gives strictly increasing epochs over a sequence of switches and refuses a stale epoch', async () => {
    const prefix = freshPrefix();
    const { store: a } = makeStore(prefix);
    const { store: b } = makeStore(prefix);
    let state = await a.init('blue');
    await b.init('blue');
    const epochs: number[] = [];
    for (let i = 0; i < 10; i++) {
      const store = i % 2 === 0 ? a : b;
      const result = await store.compareAndSet(state.epoch, next(state, i % 2 ? 'blue' : 'green'));
      expect(result.ok).toBe(true);
      state = result.state;
      epochs.push(state.epoch);
    }
    expect(epochs).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const stale = await a.compareAndSet(3, { ...next(state, 'green'), epoch: 4 });
    expect(stale).toEqual({ ok: false, state });
  });

  it('rejects a next state that is invalid or does not move the epoch forward', async () => {
    const prefix = freshPrefix();
    const { store } = makeStore(prefix);
    const initial = await store.init('blue');
    await expect(store.compareAndSet(0, { ...next(initial, 'green'), epoch: 0 })).rejects.toThrow(
      new RangeError('compareAndSet: next epoch 0 is not above 0'),
    );
    await expect(
      store.compareAndSet(0, { ...next(initial, 'green'), active: 'red' as Slot }),
    ).rejects.toThrow(
      new RangeError('compareAndSet: invalid next state: active is not blue or green'),
    );
    expect(await store.read()).toEqual(initial);
  });
});

describe('RedisStore notifications and reconcile', () => {
  it("delivers a switch to the other store's listener within 200 ms", async () => {
    const prefix = freshPrefix();
    // A long reconcile interval proves the notification, not the periodic read, carried it.
    const { store: a } = makeStore(prefix, { reconcileIntervalMs: 60_000 });
    const { store: b } = makeStore(prefix, { reconcileIntervalMs: 60_000 });
    const initial = await a.init('blue');
    await b.init('blue');
    const seen: SlotState[] = [];
    b.onState((state) => seen.push(state));
    const switched = next(initial, 'green');
    const started = Date.now();
    expect((await a.compareAndSet(0, switched)).ok).toBe(true);
    await until(() => seen.some((s) => s.epoch === 1), { timeout: 200, what: 'notification' });
    expect(Date.now() - started).toBeLessThan(200);
    expect(seen.find((s) => s.epoch === 1)).toEqual(switched);
  });

  it('heals a missed notification with the reconcile read', async () => {
    const prefix = freshPrefix();
    const { store } = makeStore(prefix);
    const initial = await store.init('blue');
    const seen: SlotState[] = [];
    store.onState((state) => seen.push(state));
    const written = next(initial, 'green', 'redis-cli');
    // Written behind the store's back: no PUBLISH.
    await raw.hset(redisKeys(prefix).slot, {
      active: written.active,
      previous: written.previous,
      epoch: String(written.epoch),
      switched_at: written.switched_at,
      actor: written.actor,
    });
    await until(() => seen.some((s) => s.epoch === 1), { timeout: 1500, what: 'reconcile' });
    expect(seen.find((s) => s.epoch === 1)).toEqual(written);
  });

  it('isolates environments by key prefix', async () => {
    const prod = freshPrefix();
    const staging = freshPrefix();
    const { store: a } = makeStore(prod, { reconcileIntervalMs: 100 });
    const { store: b } = makeStore(staging, { reconcileIntervalMs: 100 });
    const initial = await a.init('blue');
    await b.init('blue');
    const seenByStaging: SlotState[] = [];
    b.onState((state) => seenByStaging.push(state));
    expect((await a.compareAndSet(0, next(initial, 'green'))).ok).toBe(true);
    await a.appendHistory(record({ epoch: 1 }));
    await new Promise((r) => setTimeout(r, 400));
    expect(seenByStaging.length).toBeGreaterThan(0);
    expect(seenByStaging.every((s) => s.epoch === 0 && s.active === 'blue')).toBe(true);
    expect((await b.read()).epoch).toBe(0);
    expect(await b.history(10)).toEqual([]);
    expect((await storedHash(prod)).active).toBe('green');
    expect((await storedHash(staging)).active).toBe('blue');
  });

  it('logs a key corrupted at run time once and never delivers it', async () => {
    const prefix = freshPrefix();
    const { store, logs } = makeStore(prefix, { reconcileIntervalMs: 100 });
    await store.init('blue');
    const seen: SlotState[] = [];
    store.onState((state) => seen.push(state));
    await raw.hset(redisKeys(prefix).slot, { epoch: '9', active: 'mauve' });
    await new Promise((r) => setTimeout(r, 600));
    seen.length = 0;
    await new Promise((r) => setTimeout(r, 300));
    expect(seen).toEqual([]);
    const corrupt = logs
      .lines()
      .filter((l) => l.msg === 'stored slot state is corrupt: not applied');
    expect(corrupt).toHaveLength(1);
    await expect(store.read()).rejects.toBeInstanceOf(StoreCorruptError);
    expect(store.isUp()).toBe(true);
  });

  it('ignores an unreadable notification', async () => {
    const prefix = freshPrefix();
    const { store, logs } = makeStore(prefix, { reconcileIntervalMs: 60_000 });
    await store.init('blue');
    const seen: SlotState[] = [];
    store.onState((state) => seen.push(state));
    await raw.publish(redisKeys(prefix).slotChanged, '{"active":"blue","epoch":-1}');
    await raw.publish(redisKeys(prefix).slotChanged, 'not json');
    await until(
      () =>
        logs.lines().filter((l) => l.msg === 'ignoring an unreadable slot notification').length ===
        2,
      { timeout: 2000, what: 'two warnings' },
    );
    // init()'s own publish of the initial state may arrive after the listener is
    // attached; nothing else may.
    expect(seen.filter((state) => state.epoch !== 0 || state.actor !== 'init')).toEqual([]);
  });
});

function record(overrides: Partial<SwitchRecord> = {}): SwitchRecord {
  return {
    time: new Date().toISOString(),
    actor: 'api',
    from: 'blue',
    to: 'green',
    epoch: 1,
    result: 'switched',
    ...overrides,
  };
}

describe('RedisStore history', () => {
  it('returns the newest records first, with every field', async () => {
    const prefix = freshPrefix();
    const { store } = makeStore(prefix);
    await store.init('blue');
    const first = record({ epoch: 1, from: null, actor: 'deploy' });
    const second = record({ epoch: 1, result: 'refused', reason: 'target_unhealthy: 503' });
    const third = record({ epoch: 2, from: 'green', to: 'blue', result: 'conflict' });
    for (const r of [first, second, third]) await store.appendHistory(r);
    expect(await store.history(10)).toEqual([third, second, first]);
    expect(await store.history(2)).toEqual([third, second]);
    expect(await store.history(0)).toEqual([]);
  });

  it('lists successful switches in epoch order even when their records were appended out of order', async () => {
    const prefix = freshPrefix();
    const { store } = makeStore(prefix);
    await store.init('blue');
    const appended = [
      record({ epoch: 1, result: 'switched' }),
      record({ epoch: 1, result: 'refused', reason: 'target_unhealthy' }),
      // Two proxies that switched at once appended in the other order.
      record({ epoch: 3, result: 'switched', from: 'green', to: 'blue' }),
      record({ epoch: 2, result: 'switched', from: 'blue', to: 'green' }),
      record({ epoch: 3, result: 'conflict', reason: 'lost the race' }),
    ];
    for (const r of appended) await store.appendHistory(r);
    expect(await store.history(10)).toEqual([
      appended[4],
      appended[2],
      appended[3],
      appended[1],
      appended[0],
    ]);
  });

  it('is capped', async () => {
    const prefix = freshPrefix();
    const { store } = makeStore(prefix, { historyMaxLength: 200 });
    await store.init('blue');
    for (let i = 1; i <= 700; i++) await store.appendHistory(record({ epoch: i }));
    const length = await raw.xlen(redisKeys(prefix).history);
    // MAXLEN ~ trims whole stream nodes (100 entries each by default).
    expect(length).toBeGreaterThanOrEqual(200);
    expect(length).toBeLessThanOrEqual(300);
    const newest = await store.history(1000);
    expect(newest).toHaveLength(200);
    expect(newest.map((r) => r.epoch).slice(0, 3)).toEqual([700, 699, 698]);
  });

  it('skips entries it cannot read', async () => {
    const prefix = freshPrefix();
    const { store } = makeStore(prefix);
    await store.init('blue');
    const good = record();
    await store.appendHistory(good);
    await raw.xadd(redisKeys(prefix).history, '*', 'junk', 'yes');
    expect(await store.history(10)).toEqual([good]);
  });
});

describe('RedisStore outage', () => {
  it('reports the outage, fails fast, and recovers with the current state', async () => {
    const prefix = freshPrefix();
    const { store: a } = makeStore(prefix, { reconcileIntervalMs: 200, restoreGraceMs: 600 });
    const { store: b } = makeStore(prefix, { reconcileIntervalMs: 200, restoreGraceMs: 600 });
    const initial = await a.init('blue');
    await b.init('blue');
    const switched = next(initial, 'green');
    expect((await a.compareAndSet(0, switched)).ok).toBe(true);
    const availability: boolean[] = [];
    a.onAvailability((up) => availability.push(up));
    const seenByB: SlotState[] = [];
    b.onState((state) => seenByB.push(state));

    await redis.kill();
    await until(() => !a.isUp() && !b.isUp(), { timeout: 2000, what: 'both stores down' });
    expect(availability).toEqual([false]);

    for (const attempt of [
      () => a.compareAndSet(1, next(switched, 'blue')),
      () => a.appendHistory(record()),
      () => a.history(10),
      () => a.read(),
    ]) {
      const started = Date.now();
      await expect(attempt()).rejects.toThrow(new StoreUnavailableError('redis is not connected'));
      expect(Date.now() - started).toBeLessThan(1000);
    }

    // Restarted without persistence: the key is gone, the stores put back what they know.
    await redis.restart();
    await until(() => a.isUp() && b.isUp(), { timeout: 5000, what: 'both stores up again' });
    expect(availability).toEqual([false, true]);
    seenByB.length = 0;
    await until(() => seenByB.length > 0, { timeout: 1500, what: 'a reconcile after the restart' });
    expect(seenByB.at(-1)).toEqual(switched);
    expect((await storedHash(prefix)).epoch).toBe('1');

    // Switches wait until every proxy had the chance to put back what it knows.
    const back = next(switched, 'blue');
    await expect(b.compareAndSet(1, back)).rejects.toThrow(
      /^the slot state is being restored after redis lost it; switching resumes within \d+ ms$/,
    );
    const result = await valueOf(
      async () => {
        const answer = await b.compareAndSet(1, back).catch((e: unknown) => e);
        return answer instanceof StoreUnavailableError ? undefined : answer;
      },
      { timeout: 5000, interval: 50, what: 'a switch accepted after the restore' },
    );
    expect(result).toEqual({ ok: true, state: back });
    expect(await a.read()).toEqual(back);
  });

  it('counts a stalled redis as down: commands fail at the command timeout', async () => {
    const prefix = freshPrefix();
    const { store } = makeStore(prefix, { reconcileIntervalMs: 100, commandTimeoutMs: 300 });
    const initial = await store.init('blue');
    const availability: boolean[] = [];
    store.onAvailability((up) => availability.push(up));
    // The connection stays open but nothing is answered, as behind a stalled network.
    await raw.call('CLIENT', 'PAUSE', '1500', 'ALL');
    const started = Date.now();
    await expect(store.compareAndSet(0, next(initial, 'green'))).rejects.toThrow(
      new StoreUnavailableError('redis did not answer within 300 ms'),
    );
    expect(Date.now() - started).toBeLessThan(1000);
    expect(store.isUp()).toBe(false);
    await until(() => store.isUp(), { timeout: 5000, what: 'up after the pause' });
    expect(availability).toEqual([false, true]);
    // The timed-out write may or may not have landed; either way the store is coherent again.
    const now = await store.read();
    const result = await store.compareAndSet(now.epoch, next(now, otherSlot(now.active)));
    expect(result.ok).toBe(true);
  });

  it('restores the newest state when redis came back with an older one', async () => {
    const prefix = freshPrefix();
    const { store } = makeStore(prefix, { reconcileIntervalMs: 100 });
    let state = await store.init('blue');
    for (const slot of ['green', 'blue', 'green'] as const) {
      state = (await store.compareAndSet(state.epoch, next(state, slot))).state;
    }
    // As if another proxy that knew only epoch 1 re-seeded a restarted redis first.
    await raw.hset(redisKeys(prefix).slot, { active: 'green', previous: 'blue', epoch: '1' });
    await new Promise((r) => setTimeout(r, 400));
    expect(await storedHash(prefix)).toMatchObject({ epoch: '3', active: 'green' });
  });

  it('heals two states sharing one epoch by re-publishing the stored one under the next epoch', async () => {
    const prefix = freshPrefix();
    const { store, logs } = makeStore(prefix, { reconcileIntervalMs: 100 });
    const initial = await store.init('blue');
    const mine = next(initial, 'green', 'this-proxy');
    await store.compareAndSet(0, mine);
    const seen: SlotState[] = [];
    store.onState((state) => seen.push(state));
    // What a lost write leaves behind: another state of epoch 1 written over an emptied redis.
    const theirs = { ...next(initial, 'blue', 'other-proxy'), previous: 'blue' as const };
    await raw.hset(redisKeys(prefix).slot, {
      active: theirs.active,
      previous: theirs.previous,
      epoch: '1',
      switched_at: theirs.switched_at,
      actor: theirs.actor,
    });
    await until(() => seen.some((s) => s.epoch === 2), { timeout: 2000, what: 'the healed state' });
    expect(seen.find((s) => s.epoch === 2)).toEqual({ ...theirs, epoch: 2 });
    expect(await storedHash(prefix)).toMatchObject({ epoch: '2', actor: 'other-proxy' });
    expect(
      logs.lines().filter((l) => typeof l.msg === 'string' && l.msg.startsWith('two slot states')),
    ).toHaveLength(1);
  });

  it('puts the state back before a compare-and-set on a redis that lost it', async () => {
    const prefix = freshPrefix();
    // No reconcile during the test: the compare-and-set itself must restore.
    const { store } = makeStore(prefix, { reconcileIntervalMs: 60_000, restoreGraceMs: 300 });
    const initial = await store.init('blue');
    const switched = next(initial, 'green');
    await store.compareAndSet(0, switched);
    await raw.del(redisKeys(prefix).slot);
    const back = next(switched, 'blue');
    await expect(store.compareAndSet(1, back)).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(await storedHash(prefix)).toMatchObject({ epoch: '1', active: 'green' });
    const pttl = await raw.pttl(redisKeys(prefix).slotRestoring);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(300);
    await new Promise((r) => setTimeout(r, pttl + 50));
    expect(await store.compareAndSet(1, back)).toEqual({ ok: true, state: back });
    expect((await storedHash(prefix)).epoch).toBe('2');
  });
});
