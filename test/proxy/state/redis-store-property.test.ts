import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../common/logger.js';
import { parseSlotHash } from '../../../proxy/state/redis-codec.js';
import { redisKeys } from '../../../proxy/state/redis-keys.js';
import { RedisStore } from '../../../proxy/state/redis-store.js';
import { SlotRegistry } from '../../../proxy/state/slot-registry.js';
import { otherSlot, type Slot } from '../../../common/slot.js';
import { invalidStateReason, type SlotState } from '../../../proxy/state/slot-state.js';
import { StoreUnavailableError } from '../../../proxy/state/store.js';
import { until } from '../../support/wait.js';
import { RedisProcess } from '../../../harness/redis-process.js';

/**
 * Random interleavings of compare-and-set from several store instances (each
 * feeding its own SlotRegistry, as a proxy does) with Redis killed and
 * restarted empty, sometimes in the middle of a race. Afterwards: successful
 * writes carry strictly increasing epochs in real-time order, every state seen
 * is coherent, and all registries converge to the stored state.
 */

const STORES = 3;

type Op =
  | { kind: 'switch'; store: number; slot: Slot }
  | { kind: 'race'; stores: number[]; slot: Slot }
  | { kind: 'outage' }
  | { kind: 'killDuringRace'; stores: number[]; slot: Slot; killAfterMs: number }
  | { kind: 'settle'; ms: number }
  /** Subscribers cut, a switch nobody hears of, then an outage before the reconcile read. */
  | { kind: 'lostNotification'; store: number; slot: Slot };

const storeIndex = fc.integer({ min: 0, max: STORES - 1 });
const slot = fc.constantFrom<Slot>('blue', 'green');
const racers = fc.array(storeIndex, { minLength: 2, maxLength: 6 });

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant('switch' as const), store: storeIndex, slot }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('race' as const), stores: racers, slot }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('outage' as const) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('killDuringRace' as const),
      stores: racers,
      slot,
      killAfterMs: fc.integer({ min: 0, max: 3 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('lostNotification' as const),
      store: storeIndex,
      slot,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('settle' as const),
      ms: fc.integer({ min: 0, max: 150 }),
    }),
  },
);

let redis: RedisProcess;
let raw: Redis;
let run = 0;

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

function coherenceProblem(state: SlotState): string | undefined {
  const invalid = invalidStateReason(state);
  if (invalid) return invalid;
  if (state.epoch > 0 && (state.previous === null || state.previous === state.active)) {
    return `epoch ${state.epoch}: previous ${state.previous} with active ${state.active}`;
  }
  return undefined;
}

async function scenario(ops: Op[]): Promise<void> {
  run += 1;
  const prefix = `prop${run}-${process.pid}:`;
  const logger = createLogger({ level: 'silent' });
  const stores = Array.from(
    { length: STORES },
    () =>
      new RedisStore({
        url: redis.url,
        keyPrefix: prefix,
        logger,
        reconcileIntervalMs: 100,
        reconnectMaxDelayMs: 100,
        restoreGraceMs: 400,
      }),
  );
  const problems: string[] = [];
  try {
    const initial = await Promise.all(stores.map((s) => s.init('blue')));
    const registries = initial.map((state) => new SlotRegistry(state));
    stores.forEach((store, i) => store.onState((state) => registries[i]!.apply(state)));
    for (const registry of registries) {
      registry.onChange((state) => {
        const problem = coherenceProblem(state);
        if (problem) problems.push(`registry applied an incoherent state: ${problem}`);
      });
    }

    /** Epochs of successful writes, per step; steps run one after another. */
    const successes: number[][] = [];

    const attempt = async (i: number, target: Slot, step: number[], outage: boolean) => {
      const current = registries[i]!.current;
      // Like the switch service: switching to the active slot writes nothing.
      if (current.active === target) return;
      const next: SlotState = {
        active: target,
        previous: current.active,
        epoch: current.epoch + 1,
        switched_at: new Date().toISOString(),
        actor: `store-${i}`,
      };
      try {
        const result = await stores[i]!.compareAndSet(current.epoch, next);
        registries[i]!.apply(result.state);
        if (result.ok) step.push(result.state.epoch);
      } catch (error) {
        if (!(error instanceof StoreUnavailableError) || !outage) throw error;
      }
    };

    const restart = async () => {
      await redis.restart();
      await until(() => stores.every((s) => s.isUp()), {
        timeout: 10_000,
        what: 'stores up after restart',
      });
      // Switches are refused until the restore grace is over.
      await until(async () => (await raw.exists(redisKeys(prefix).slotRestoring)) === 0, {
        timeout: 10_000,
        what: 'restore grace over',
      });
    };

    for (const o of ops) {
      const step: number[] = [];
      switch (o.kind) {
        case 'switch':
          await attempt(o.store, o.slot, step, false);
          break;
        case 'race':
          await Promise.all(o.stores.map((i) => attempt(i, o.slot, step, false)));
          break;
        case 'outage': {
          await redis.kill();
          await until(() => stores.every((s) => !s.isUp()), { timeout: 5000, what: 'stores down' });
          for (let i = 0; i < STORES; i++) {
            const current = registries[i]!.current;
            const next = { ...current, epoch: current.epoch + 1 };
            await expect(stores[i]!.compareAndSet(current.epoch, next)).rejects.toBeInstanceOf(
              StoreUnavailableError,
            );
          }
          await restart();
          break;
        }
        case 'killDuringRace': {
          const race = Promise.all(o.stores.map((i) => attempt(i, o.slot, step, true)));
          await new Promise((r) => setTimeout(r, o.killAfterMs));
          await redis.kill();
          await race;
          await restart();
          break;
        }
        case 'lostNotification':
          await raw.client('KILL', 'TYPE', 'pubsub');
          await attempt(o.store, o.slot, step, false);
          await redis.kill();
          await redis.restart();
          // The others switch as soon as they can, possibly on the older state they re-seeded.
          await Promise.all(
            registries.map(async (_, i) => {
              if (i === o.store) return;
              // Up to 200 ms; a store still down then is part of what is tested.
              await until(() => stores[i]!.isUp(), { timeout: 200, interval: 5 }).catch(
                () => undefined,
              );
              await attempt(i, otherSlot(registries[i]!.current.active), step, true);
            }),
          );
          await restart();
          break;
        case 'settle':
          await new Promise((r) => setTimeout(r, o.ms));
          break;
      }
      successes.push(step);
    }

    // Successful writes: distinct epochs within a step, and every step's above the last.
    let highest = -1;
    for (const step of successes) {
      if (new Set(step).size !== step.length) problems.push(`two writes won one epoch: ${step}`);
      for (const epoch of step) {
        if (epoch <= highest) problems.push(`epoch ${epoch} written after ${highest}`);
      }
      highest = Math.max(highest, ...step);
    }

    // Convergence: every registry holds exactly the stored state.
    let stored: SlotState | undefined;
    await until(
      async () => {
        stored = parseSlotHash(
          new Map(Object.entries(await raw.hgetall(redisKeys(prefix).slot))),
          'slot',
        );
        return registries.every((r) => JSON.stringify(r.current) === JSON.stringify(stored));
      },
      { timeout: 5000, what: 'registries converge to the stored state' },
    ).catch((error: Error) =>
      problems.push(
        `${error.message}: stored ${JSON.stringify(stored)}, registries ${JSON.stringify(registries.map((r) => r.current))}`,
      ),
    );
    if (stored) {
      const problem = coherenceProblem(stored);
      if (problem) problems.push(`stored state incoherent: ${problem}`);
      if (stored.epoch < highest) problems.push(`stored epoch ${stored.epoch} below ${highest}`);
    }
  } finally {
    await Promise.all(stores.map((s) => s.close()));
    if (!redis.running) await redis.restart();
  }
  expect(problems).toEqual([]);
}

describe('RedisStore under random interleavings and restarts', () => {
  it('keeps epochs increasing and converges every registry', { timeout: 180_000 }, async () => {
    await fc.assert(fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 12 }), scenario), {
      numRuns: Number(process.env.PROPERTY_RUNS ?? 12),
      interruptAfterTimeLimit: 90_000,
    });
  });
});
