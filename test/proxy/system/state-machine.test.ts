import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../common/logger.js';
import { parseSlotHash } from '../../../proxy/state/redis-codec.js';
import { redisKeys } from '../../../proxy/state/redis-keys.js';
import { RedisStore } from '../../../proxy/state/redis-store.js';
import { SlotRegistry } from '../../../proxy/state/slot-registry.js';
import type { Slot } from '../../../common/slot.js';
import type { SlotState } from '../../../proxy/state/slot-state.js';
import { SwitchService, type SwitchOutcome } from '../../../proxy/admin/switch-service.js';
import { sleep } from '../../support/raw-client.js';
import { TcpRelay, type StallDirection } from '../../support/tcp-relay.js';
import { until } from '../../support/wait.js';
import { RedisProcess } from '../../../harness/redis-process.js';

/**
 * A state-machine property test of the fleet's control plane: several proxy
 * instances (each its own SwitchService, SlotRegistry and RedisStore, each
 * reaching Redis through its own TCP relay) under random interleavings of
 * switches, rollbacks, races, network partitions (cut, stalled, answers
 * held, a write held in flight) and restarts. After every run:
 * - the switches in the audit history form one chain: epochs 1..N once each,
 *   each `from` the `to` of the one before, `to` never equal to `from`;
 * - the stored state is the end of that chain (`active` and `previous`);
 * - every state any instance applied is a state of that chain (no fork, no
 *   half-done switch), in strictly increasing epochs;
 * - every switch answered as done is in the chain under its actor, and no
 *   switch answered as not done (anything but an unknown outcome) is;
 * - every instance converges to the stored state once the network heals.
 */

const INSTANCES = 3;
const COMMAND_TIMEOUT_MS = 300;
const RECONCILE_MS = 100;

type Op =
  | { kind: 'switch'; at: number; slot: Slot; force: boolean; expect: 'none' | 'current' | 'stale' }
  | { kind: 'rollback'; at: number }
  | { kind: 'race'; at: number[]; slot: Slot }
  | { kind: 'partition'; at: number; how: 'cut' | StallDirection }
  | { kind: 'writeHeld'; at: number; how: StallDirection }
  | { kind: 'heal'; at: number }
  | { kind: 'restart'; at: number }
  | { kind: 'settle'; ms: number };

const at = fc.integer({ min: 0, max: INSTANCES - 1 });
const slot = fc.constantFrom<Slot>('blue', 'green');
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('switch' as const),
      at,
      slot,
      force: fc.boolean(),
      expect: fc.constantFrom('none' as const, 'current' as const, 'stale' as const),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('rollback' as const), at }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('race' as const),
      at: fc.array(at, { minLength: 2, maxLength: 5 }),
      slot,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('partition' as const),
      at,
      how: fc.constantFrom('cut' as const, 'both' as const, 'replies' as const),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('writeHeld' as const),
      at,
      how: fc.constantFrom('both' as const, 'replies' as const),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('heal' as const), at }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('restart' as const), at }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('settle' as const),
      ms: fc.integer({ min: 0, max: 250 }),
    }),
  },
);

const logger = createLogger({ level: 'silent' });
const healthy = async (target: Slot) => ({
  healthy: true,
  url: `http://${target}.test/health`,
  attempts: [{ url: `http://${target}.test/health`, ok: true, status_code: 200, latency_ms: 0 }],
});

/** One proxy instance's control plane, reaching Redis through its relay. */
interface Instance {
  relay: TcpRelay;
  store: RedisStore;
  registry: SlotRegistry;
  service: SwitchService;
}

interface Answer {
  actor: string;
  outcome: SwitchOutcome | { ok: false; error: 'threw'; message: string };
  unknown: boolean;
}

let redis: RedisProcess;
let raw: Redis;
let run = 0;

beforeAll(async () => {
  redis = await RedisProcess.start();
  raw = new Redis(redis.url, { lazyConnect: true });
  raw.on('error', () => undefined);
  await raw.connect();
});

afterAll(async () => {
  raw?.disconnect();
  await redis?.stop();
});

/** True once `check` holds, false when it has not within `timeoutMs`. */
function waitUntil(check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<boolean> {
  return until(check, { timeout: timeoutMs }).then(
    () => true,
    () => false,
  );
}

async function scenario(ops: Op[]): Promise<void> {
  run++;
  const prefix = `relsm${run}-${process.pid}:`;
  const problems: string[] = [];
  const applied: Array<{ instance: number; state: SlotState }> = [];
  const answers: Answer[] = [];
  let actors = 0;

  const open = async (i: number, relay: TcpRelay): Promise<Instance> => {
    const store = new RedisStore({
      url: `redis://127.0.0.1:${relay.port}`,
      keyPrefix: prefix,
      logger,
      reconcileIntervalMs: RECONCILE_MS,
      reconnectMaxDelayMs: 100,
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
    });
    const registry = new SlotRegistry(await store.init('blue'));
    applied.push({ instance: i, state: registry.current });
    store.onState((state) => registry.apply(state));
    registry.onChange((next, previous) => {
      if (next.epoch <= previous.epoch)
        problems.push(`instance ${i} went from ${previous.epoch} to ${next.epoch}`);
      applied.push({ instance: i, state: next });
    });
    const service = new SwitchService({
      store,
      registry,
      gate: healthy,
      switches: { inc: () => undefined },
      logger,
    });
    return { relay, store, registry, service };
  };

  const instances: Instance[] = [];
  for (let i = 0; i < INSTANCES; i++)
    instances.push(await open(i, await TcpRelay.start(redis.port)));

  const call = async (
    i: number,
    what: (service: SwitchService, actor: string) => Promise<SwitchOutcome>,
  ) => {
    const actor = `op-${++actors}`;
    try {
      const outcome = await what(instances[i]!.service, actor);
      const unknown = !outcome.ok && outcome.message.startsWith('no answer from the slot store');
      answers.push({ actor, outcome, unknown });
    } catch (error) {
      answers.push({
        actor,
        outcome: { ok: false, error: 'threw', message: String(error) },
        unknown: false,
      });
      problems.push(`${actor} threw: ${String(error)}`);
    }
    return actor;
  };

  const switchOn = (i: number, target: Slot, force: boolean, expectEpoch?: number) =>
    call(i, (service, actor) =>
      service.switch(target, {
        actor,
        force,
        ...(expectEpoch === undefined ? {} : { expectEpoch }),
      }),
    );

  try {
    for (const o of ops) {
      switch (o.kind) {
        case 'switch': {
          const epoch = instances[o.at]!.registry.current.epoch;
          const expectEpoch =
            o.expect === 'none'
              ? undefined
              : o.expect === 'current'
                ? epoch
                : Math.max(0, epoch - 1);
          await switchOn(o.at, o.slot, o.force, expectEpoch);
          break;
        }
        case 'rollback':
          await call(o.at, (service, actor) => service.rollback({ actor, force: true }));
          break;
        case 'race':
          await Promise.all(o.at.map((i) => switchOn(i, o.slot, false)));
          break;
        case 'partition':
          if (o.how === 'cut') instances[o.at]!.relay.cut();
          else instances[o.at]!.relay.stall(o.how);
          break;
        case 'writeHeld': {
          const instance = instances[o.at]!;
          const target: Slot = instance.registry.current.active === 'blue' ? 'green' : 'blue';
          instance.relay.stallWhenSent(`"actor":"op-${actors + 1}"`, o.how);
          await switchOn(o.at, target, true);
          break;
        }
        case 'heal':
          instances[o.at]!.relay.restore();
          break;
        case 'restart': {
          // A proxy process killed and started again: a new store and registry from the store.
          const old = instances[o.at]!;
          await old.store.close();
          old.relay.restore();
          instances[o.at] = await open(o.at, old.relay);
          break;
        }
        case 'settle':
          await sleep(o.ms);
          break;
      }
    }

    for (const instance of instances) instance.relay.restore();
    // The stored state and the history, read in one atomic step once every instance holds that state.
    let stored: SlotState | undefined;
    let entries: Array<[string, string[]]> = [];
    const converged = await waitUntil(async () => {
      const replies = await raw
        .multi()
        .hgetall(redisKeys(prefix).slot)
        .xrange(redisKeys(prefix).history, '-', '+')
        .exec();
      const hash = (replies?.[0]?.[1] ?? {}) as Record<string, string>;
      entries = (replies?.[1]?.[1] ?? []) as Array<[string, string[]]>;
      stored = parseSlotHash(new Map(Object.entries(hash)), 'slot');
      return instances.every((x) => JSON.stringify(x.registry.current) === JSON.stringify(stored));
    }, 3000);
    if (!converged) {
      problems.push(
        `not converged: stored ${JSON.stringify(stored)}, registries ${JSON.stringify(instances.map((x) => x.registry.current))}`,
      );
    }

    // The chain of switches, from the audit history (oldest first).
    const switched = entries
      .map(([, fields]) => {
        const f = new Map<string, string>();
        for (let k = 0; k + 1 < fields.length; k += 2) f.set(fields[k]!, fields[k + 1]!);
        return f;
      })
      .filter((f) => f.get('result') === 'switched')
      .map((f) => ({
        epoch: Number(f.get('epoch')),
        from: f.get('from'),
        to: f.get('to') as Slot,
        actor: f.get('actor')!,
      }))
      .sort((x, y) => x.epoch - y.epoch);
    const chain = new Map<number, { active: Slot; previous: Slot | null; actor: string }>([
      [0, { active: 'blue', previous: null, actor: 'init' }],
    ]);
    switched.forEach((record, k) => {
      if (record.epoch !== k + 1)
        problems.push(`history: switch ${k + 1} has epoch ${record.epoch}`);
      const before = chain.get(record.epoch - 1);
      if (before && record.from !== before.active) {
        problems.push(
          `history: epoch ${record.epoch} from ${record.from}, but ${before.active} was active`,
        );
      }
      if (record.from === record.to)
        problems.push(`history: epoch ${record.epoch} from ${record.from} to itself`);
      chain.set(record.epoch, {
        active: record.to,
        previous: (record.from || null) as Slot | null,
        actor: record.actor,
      });
    });
    if (stored) {
      const end = chain.get(stored.epoch);
      if (stored.epoch !== switched.length) {
        problems.push(
          `history holds ${switched.length} switches, the stored state is at epoch ${stored.epoch}`,
        );
      } else if (!end || end.active !== stored.active || end.previous !== stored.previous) {
        problems.push(
          `stored ${JSON.stringify(stored)} is not the end of the chain ${JSON.stringify(end)}`,
        );
      }
    }
    for (const { instance, state } of applied) {
      const link = chain.get(state.epoch);
      if (!link || link.active !== state.active || link.previous !== state.previous) {
        problems.push(`instance ${instance} applied ${JSON.stringify(state)}, not in the chain`);
      }
    }
    const committedActors = new Set(switched.map((r) => r.actor));
    for (const answer of answers) {
      const { outcome } = answer;
      if (outcome.ok && outcome.changed) {
        const link = chain.get(outcome.state.epoch);
        if (link?.actor !== answer.actor) {
          problems.push(
            `${answer.actor} answered switched to epoch ${outcome.state.epoch}, the chain says ${JSON.stringify(link)}`,
          );
        }
      } else if (committedActors.has(answer.actor) && !answer.unknown) {
        problems.push(
          `${answer.actor} answered ${JSON.stringify(outcome.ok ? 'unchanged' : outcome.error)} but was applied`,
        );
      }
    }
  } finally {
    for (const instance of instances) {
      await instance.store.close();
      await instance.relay.close();
    }
  }
  expect(problems).toEqual([]);
}

describe('the fleet control plane under random switches, partitions and restarts', () => {
  it(
    'keeps one chain of switches, applies nothing else and converges',
    { timeout: 120_000 },
    async () => {
      await fc.assert(fc.asyncProperty(fc.array(op, { minLength: 3, maxLength: 14 }), scenario), {
        numRuns: Number(process.env.PROPERTY_RUNS ?? 12),
        interruptAfterTimeLimit: 60_000,
      });
    },
  );
});
