import { pino } from 'pino';
import { Counter, Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { healthUrl, runHealthGate } from '../../../proxy/admin/health-gate.js';
import { RedisStore } from '../../../proxy/state/redis-store.js';
import { SlotRegistry } from '../../../proxy/state/slot-registry.js';
import type { Slot } from '../../../common/slot.js';
import { SwitchService } from '../../../proxy/admin/switch-service.js';
import { startFakeSlots, type FakeSlot } from '../../support/fake-slot.js';
import { RedisProcess } from '../../../harness/redis-process.js';

const logger = pino({ level: 'silent' });

interface Proxy {
  store: RedisStore;
  registry: SlotRegistry;
  service: SwitchService;
  counts: () => Promise<Record<string, number>>;
}

describe('switch service on a real Redis store', () => {
  let redis: RedisProcess;
  let slots: Record<Slot, FakeSlot>;
  let prefixN = 0;
  const open: RedisStore[] = [];

  beforeAll(async () => {
    [redis, slots] = await Promise.all([RedisProcess.start(), startFakeSlots()]);
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.close()));
    slots.blue.setHealth({ status: 200, delayMs: 0 });
    slots.green.setHealth({ status: 200, delayMs: 0 });
    if (!redis.running) await redis.restart();
  });
  afterAll(async () => {
    await Promise.all([redis.stop(), slots.blue.close(), slots.green.close()]);
  });

  /** One proxy's control plane; proxies made with the same prefix share the fleet state. */
  async function proxy(prefix = `t${++prefixN}:`): Promise<Proxy> {
    const store = new RedisStore({ url: redis.url, keyPrefix: prefix, logger });
    open.push(store);
    const registry = new SlotRegistry(await store.init('blue'));
    store.onState((state) => registry.apply(state));
    const metrics = new Registry();
    const switches = new Counter({
      name: 'togather_proxy_switches_total',
      help: 'switch attempts by result',
      labelNames: ['result'] as const,
      registers: [metrics],
    });
    const service = new SwitchService({
      store,
      registry,
      gate: (slot) =>
        runHealthGate(healthUrl(slots[slot].url, '/health'), { retryDelayMs: 20, timeoutMs: 500 }),
      switches,
      logger,
    });
    const counts = async () => {
      const values = (await switches.get()).values;
      return Object.fromEntries(values.map((v) => [String(v.labels.result), v.value]));
    };
    return { store, registry, service, counts };
  }

  it('switches to a healthy slot, applies it at once and records it', async () => {
    const p = await proxy();
    const outcome = await p.service.switch('green', { actor: 'alice' });
    expect(outcome).toMatchObject({
      ok: true,
      changed: true,
      state: { active: 'green', previous: 'blue', epoch: 1, actor: 'alice' },
    });
    expect(p.registry.current).toMatchObject({ active: 'green', epoch: 1 });
    expect(await p.store.read()).toMatchObject({ active: 'green', epoch: 1 });
    const [entry] = await p.store.history(10);
    expect(entry).toMatchObject({
      actor: 'alice',
      from: 'blue',
      to: 'green',
      epoch: 1,
      result: 'switched',
    });
    expect(await p.counts()).toEqual({ switched: 1 });
  });

  it('answers changed: false for the active slot and writes nothing', async () => {
    const p = await proxy();
    const outcome = await p.service.switch('blue', { actor: 'api' });
    expect(outcome).toMatchObject({
      ok: true,
      changed: false,
      state: { active: 'blue', epoch: 0 },
    });
    expect((await p.store.read()).epoch).toBe(0);
    expect((await p.store.history(10))[0]).toMatchObject({
      from: 'blue',
      to: 'blue',
      result: 'unchanged',
      epoch: 0,
    });
    expect(await p.counts()).toEqual({ unchanged: 1 });
  });

  it('refuses an unhealthy target with what the gate saw; force overrides', async () => {
    const p = await proxy();
    slots.green.setHealth({ status: 503 });
    const refused = await p.service.switch('green', { actor: 'api' });
    expect(refused).toMatchObject({ ok: false, error: 'target_unhealthy' });
    if (refused.ok) throw new Error('unreachable');
    expect(refused.message).toBe(
      `green is unhealthy: GET ${slots.green.url}/health answered 503 (status unhealthy) (3 tries); use force to switch anyway`,
    );
    expect(refused.health?.attempts.map((a) => a.status_code)).toEqual([503, 503, 503]);
    expect(p.registry.current.active).toBe('blue');

    const forced = await p.service.switch('green', { actor: 'api', force: true });
    expect(forced).toMatchObject({ ok: true, changed: true, state: { active: 'green', epoch: 1 } });
    const history = await p.store.history(10);
    expect(history.map((h) => [h.result, h.reason])).toEqual([
      ['switched', 'forced: health gate skipped'],
      ['refused', refused.message],
    ]);
    expect(await p.counts()).toEqual({ refused: 1, switched: 1 });
  });

  it('refuses a stale expect_epoch and switches on the current one', async () => {
    const p = await proxy();
    await p.service.switch('green', { actor: 'api' });
    const stale = await p.service.switch('blue', { actor: 'api', expectEpoch: 0 });
    expect(stale).toEqual({
      ok: false,
      error: 'epoch_conflict',
      message: 'expected epoch 0 but the state is at epoch 1',
      state: expect.objectContaining({ active: 'green', epoch: 1 }),
    });
    const fresh = await p.service.switch('blue', { actor: 'api', expectEpoch: 1 });
    expect(fresh).toMatchObject({ ok: true, changed: true, state: { active: 'blue', epoch: 2 } });
    expect((await p.store.history(10)).map((h) => h.result)).toEqual([
      'switched',
      'conflict',
      'switched',
    ]);
  });

  it('rolls back to the previous slot, and refuses when there is none', async () => {
    const p = await proxy();
    const none = await p.service.rollback({ actor: 'api' });
    expect(none).toMatchObject({
      ok: false,
      error: 'no_previous_slot',
      message: 'there is no previous slot to roll back to (blue has been active since start)',
    });
    await p.service.switch('green', { actor: 'deploy' });
    const back = await p.service.rollback({ actor: 'ops' });
    expect(back).toMatchObject({
      ok: true,
      changed: true,
      state: { active: 'blue', previous: 'green', epoch: 2, actor: 'ops' },
    });
  });

  it('applies a switch made through another proxy before deciding', async () => {
    const prefix = `shared${++prefixN}:`;
    const [a, b] = [await proxy(prefix), await proxy(prefix)];
    await a.service.switch('green', { actor: 'a' });
    // b may not have heard of it yet; it reads the store, so this is a no-op, not a flip back
    const outcome = await b.service.switch('green', { actor: 'b' });
    expect(outcome).toMatchObject({ ok: true, changed: false, state: { epoch: 1 } });
    expect(b.registry.current).toMatchObject({ active: 'green', epoch: 1 });
  });

  it('concurrent switches over two proxies: one winner per epoch, both end on one state', async () => {
    const prefix = `race${++prefixN}:`;
    const [a, b] = [await proxy(prefix), await proxy(prefix)];
    const targets: Slot[] = Array.from({ length: 20 }, (_, i) => (i % 3 === 0 ? 'blue' : 'green'));
    const outcomes = await Promise.all(
      targets.map((slot, i) => (i % 2 === 0 ? a : b).service.switch(slot, { actor: `c${i}` })),
    );
    for (const o of outcomes) {
      // a lost race is either retried or answered with a clear conflict, never an error
      expect(o.ok || o.error === 'epoch_conflict').toBe(true);
    }
    const switched = (await a.store.history(100))
      .filter((h) => h.result === 'switched')
      .map((h) => h.epoch)
      .reverse();
    expect(switched).toEqual(switched.map((_, i) => i + 1));
    const stored = await a.store.read();
    expect(stored.epoch).toBe(switched.length);
    await expect.poll(() => [a.registry.current, b.registry.current]).toEqual([stored, stored]);
  });

  it('answers store_unavailable while Redis is down and keeps the last known slot', async () => {
    const p = await proxy();
    await redis.kill();
    const outcome = await p.service.switch('green', { actor: 'api' });
    expect(outcome).toMatchObject({
      ok: false,
      error: 'store_unavailable',
      state: { active: 'blue' },
    });
    if (outcome.ok) throw new Error('unreachable');
    expect(outcome.message).toMatch(
      /^the slot store is unavailable \(.+\); traffic stays on blue$/,
    );
    expect(p.registry.current.active).toBe('blue');
    expect(await p.counts()).toEqual({ unavailable: 1 });
    await redis.restart();
    await expect
      .poll(async () => (await p.service.switch('green', { actor: 'api' })).ok, { timeout: 10_000 })
      .toBe(true);
  });
});
