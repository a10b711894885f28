import { Agent, request } from 'node:http';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startFakeSlots, type FakeSlot } from '../../support/fake-slot.js';
import { sleep } from '../../support/raw-client.js';
import { TcpRelay } from '../../support/tcp-relay.js';
import { until } from '../../support/wait.js';
import { ProxyProcess, type AdminAnswer } from '../../../harness/proxy-process.js';
import { RedisProcess } from '../../../harness/redis-process.js';

/**
 * Redis faults under two `togather proxy` processes of one fleet: proxy A
 * reaches Redis through a TCP relay the test can cut or stall in the middle
 * of a switch, proxy B directly. Throughout, both keep serving (no failed
 * request), neither ever shows a state the store did not commit, and after
 * the store is back they converge within about one reconcile interval.
 */

/** The proxies read the stored state every second (RedisStore's default). */
const RECONCILE_MS = 1000;
/** ioredis reconnects within this after the server is reachable again (capped backoff). */
const RECONNECT_MS = 1000;
/** Generous slack for a loaded machine; the measured times are printed. */
const SLACK_MS = 2000;

type Slot = 'blue' | 'green';

interface Sample {
  proxy: string;
  epoch: number;
  active: Slot;
  connected: boolean;
}

let redis: RedisProcess;
let raw: Redis;
let slots: Record<Slot, FakeSlot>;
let run = 0;

beforeAll(async () => {
  redis = await RedisProcess.start();
  raw = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  raw.on('error', () => undefined);
  await raw.connect();
  slots = await startFakeSlots();
});

afterAll(async () => {
  raw?.disconnect();
  await redis?.stop();
  await Promise.all([slots?.blue.close(), slots?.green.close()]);
});

/** One fleet per test: a fresh key prefix, proxy A behind the relay, proxy B direct. */
class Fleet {
  readonly agent = new Agent({ keepAlive: true, maxSockets: 16 });
  readonly samples: Sample[] = [];
  readonly failures: string[] = [];
  served = 0;
  private running = true;
  private loops: Promise<void>[] = [];

  constructor(
    readonly prefix: string,
    readonly relay: TcpRelay,
    readonly a: ProxyProcess,
    readonly b: ProxyProcess,
  ) {}

  static async start(): Promise<Fleet> {
    run++;
    const prefix = `relfault${run}-${process.pid}:`;
    const relay = await TcpRelay.start(redis.port);
    const common = { blueUrl: slots.blue.url, greenUrl: slots.green.url, keyPrefix: prefix };
    const env = { ACCESS_LOG: 'off', LOG_LEVEL: 'info' };
    const a = await ProxyProcess.start({
      ...common,
      redisUrl: `redis://127.0.0.1:${relay.port}`,
      env,
    });
    const b = await ProxyProcess.start({ ...common, redisUrl: redis.url, env });
    const fleet = new Fleet(prefix, relay, a, b);
    fleet.loops = [
      ...[a, b, a, b].map((proxy) => fleet.loadLoop(proxy)),
      ...[a, b].map((proxy, i) => fleet.sampleLoop(proxy, i === 0 ? 'A' : 'B')),
    ];
    return fleet;
  }

  /** The state Redis holds. */
  async stored(): Promise<{ active: string; epoch: number }> {
    const hash = await raw.hgetall(`${this.prefix}slot`);
    return { active: hash.active ?? '', epoch: Number(hash.epoch) };
  }

  async servedBy(proxy: ProxyProcess): Promise<string> {
    const answer = await exchange(this.agent, `${proxy.url}/probe`);
    return answer.slot ?? `none (${answer.status})`;
  }

  /** Waits until both proxies serve what Redis holds; returns how long that took. */
  async converged(timeoutMs: number): Promise<number> {
    const startedAt = Date.now();
    // Each check that finds them apart throws what it saw: the failure shows the last one.
    await until(
      async () => {
        const stored = await this.stored();
        const served = await Promise.all([this.servedBy(this.a), this.servedBy(this.b)]);
        const statuses = await Promise.all([this.a.status(), this.b.status()]);
        if (
          served.every((s) => s === stored.active) &&
          statuses.every((s) => s.epoch === stored.epoch && s.active === stored.active)
        ) {
          return true;
        }
        throw new Error(
          `not converged after ${timeoutMs} ms: stored ${JSON.stringify(stored)}, served ${served}, ` +
            `statuses ${JSON.stringify(statuses.map((s) => [s.active, s.epoch, s.store]))}`,
        );
      },
      { timeout: timeoutMs, interval: 20 },
    );
    return Date.now() - startedAt;
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.agent.destroy();
    await Promise.all([this.a.stop(), this.b.stop()]);
    await this.relay.close();
  }

  /** Every sampled state must be one the store committed: `committed[epoch]` is its slot. */
  expectOnlyCommitted(committed: Record<number, Slot>): void {
    const foreign = this.samples.filter((s) => committed[s.epoch] !== s.active);
    expect(foreign, 'states the store never committed').toEqual([]);
  }

  private async loadLoop(proxy: ProxyProcess): Promise<void> {
    while (this.running) {
      const answer = await exchange(this.agent, `${proxy.url}/load`);
      if (answer.status === 200 && (answer.slot === 'blue' || answer.slot === 'green'))
        this.served++;
      else
        this.failures.push(`${proxy.url}: ${answer.status} ${answer.slot} ${answer.error ?? ''}`);
    }
  }

  private async sampleLoop(proxy: ProxyProcess, name: string): Promise<void> {
    while (this.running) {
      try {
        const status = await proxy.status();
        const store = status.store as { connected: boolean };
        this.samples.push({
          proxy: name,
          epoch: status.epoch as number,
          active: status.active as Slot,
          connected: store.connected,
        });
      } catch (error) {
        this.failures.push(`${name} /admin/status: ${String(error)}`);
      }
      await sleep(25);
    }
  }
}

function exchange(
  agent: Agent,
  url: string,
): Promise<{ status: number; slot: string | undefined; error?: string }> {
  return new Promise((resolve) => {
    const req = request(url, { agent, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => {
        const slot = res.headers['x-togather-slot'];
        resolve({ status: res.statusCode ?? 0, slot: typeof slot === 'string' ? slot : undefined });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (error) => resolve({ status: 0, slot: undefined, error: error.message }));
    req.end();
  });
}

function errorOf(answer: AdminAnswer): { error?: string; message?: string } {
  return answer.json as { error?: string; message?: string };
}

describe('Redis faults in the middle of a switch', () => {
  let fleet: Fleet;

  beforeEach(async () => {
    slots.green.setHealth({ status: 200, delayMs: 0 });
    fleet = await Fleet.start();
  });

  afterEach(async () => {
    slots.green.setHealth({ status: 200, delayMs: 0 });
    await fleet?.stop();
  });

  it('cut during the health gate: 503, nothing applied anywhere, converges when it is back', async () => {
    // The gate holds the switch long enough to cut Redis off in its middle.
    slots.green.setHealth({ delayMs: 600 });
    const switching = fleet.a.switchTo('green');
    await sleep(250);
    fleet.relay.cut();
    const answer = await switching;
    expect(answer.status).toBe(503);
    expect(errorOf(answer).error).toBe('store_unavailable');

    await sleep(500);
    expect(await fleet.stored()).toEqual({ active: 'blue', epoch: 0 });
    expect(await fleet.servedBy(fleet.a)).toBe('blue');
    expect(await fleet.servedBy(fleet.b)).toBe('blue');
    const statusA = await fleet.a.status();
    expect(statusA.store).toMatchObject({ connected: false });
    const again = await fleet.a.switchTo('green', '&force=true');
    expect(again.status).toBe(503);

    fleet.relay.restore();
    const convergedMs = await fleet.converged(RECONNECT_MS + RECONCILE_MS + SLACK_MS);
    console.log(`cut: both proxies on the stored state ${convergedMs} ms after Redis was back`);
    expect(await fleet.stored()).toEqual({ active: 'blue', epoch: 0 });
    await eventuallyConnected(fleet.a);

    slots.green.setHealth({ delayMs: 0 });
    const switched = await fleet.a.switchTo('green');
    expect(switched.status, switched.text).toBe(200);
    expect(switched.json).toMatchObject({ active: 'green', epoch: 1 });
    await fleet.converged(RECONCILE_MS + SLACK_MS);
    await sleep(100);
    fleet.expectOnlyCommitted({ 0: 'blue', 1: 'green' });
    expect(fleet.failures).toEqual([]);
    expect(fleet.served).toBeGreaterThan(0);
  });

  it('stalled during the health gate: 503, traffic stays, nothing applied when the network heals', async () => {
    slots.green.setHealth({ delayMs: 400 });
    const switching = fleet.a.switchTo('green');
    await sleep(200);
    fleet.relay.stall('both');
    const answer = await switching;
    expect(answer.status).toBe(503);
    expect(errorOf(answer)).toMatchObject({
      error: 'store_unavailable',
      message: expect.stringContaining('traffic stays on blue'),
    });
    await sleep(300);
    expect(await fleet.stored()).toEqual({ active: 'blue', epoch: 0 });
    expect(await fleet.servedBy(fleet.a)).toBe('blue');

    fleet.relay.restore();
    await sleep(RECONCILE_MS + 500);
    const convergedMs = await fleet.converged(RECONCILE_MS + SLACK_MS);
    console.log(`stalled in the gate: converged ${convergedMs} ms after the partition healed`);
    expect(await fleet.stored()).toEqual({ active: 'blue', epoch: 0 });
    await sleep(100);
    fleet.expectOnlyCommitted({ 0: 'blue' });
    expect(fleet.failures).toEqual([]);
  });

  it('the compare-and-set ran but its answer was held: 503 says so, A converges after the partition heals', async () => {
    // Held from the moment the write with the new state passes the relay.
    fleet.relay.stallWhenSent('"active":"green"', 'replies');
    const answer = await fleet.a.switchTo('green');
    expect(answer.status).toBe(503);
    expect(errorOf(answer)).toMatchObject({
      error: 'store_unavailable',
      message: expect.stringContaining('may have been written'),
    });
    // Redis did switch: B (direct) serves green, A keeps its last known slot
    // as it must without word from the store.
    expect(await fleet.stored()).toEqual({ active: 'green', epoch: 1 });
    await until(async () => (await fleet.servedBy(fleet.b)) === 'green', {
      timeout: 3000,
      what: 'B on green',
    });
    expect(await fleet.servedBy(fleet.a)).toBe('blue');

    fleet.relay.restore();
    const convergedMs = await fleet.converged(RECONCILE_MS + SLACK_MS);
    console.log(`answer held: A on the stored state ${convergedMs} ms after the partition healed`);
    await sleep(100);
    fleet.expectOnlyCommitted({ 0: 'blue', 1: 'green' });
    expect(fleet.failures).toEqual([]);
  });

  it('the compare-and-set itself was held in the network: 503, and it is refused when it arrives late', async () => {
    fleet.relay.stallWhenSent('"active":"green"', 'both');
    const answer = await fleet.a.switchTo('green');
    expect(answer.status).toBe(503);
    expect(errorOf(answer)).toMatchObject({
      error: 'store_unavailable',
      message: expect.stringContaining('may have been written'),
    });
    expect(await fleet.stored()).toEqual({ active: 'blue', epoch: 0 });

    // The held write reaches Redis now, after A gave up on it: it must not apply.
    fleet.relay.restore();
    await sleep(RECONCILE_MS + 500);
    const convergedMs = await fleet.converged(RECONCILE_MS + SLACK_MS);
    console.log(`write held: converged ${convergedMs} ms after the partition healed`);
    expect(await fleet.stored()).toEqual({ active: 'blue', epoch: 0 });
    await sleep(100);
    fleet.expectOnlyCommitted({ 0: 'blue' });
    expect(fleet.failures).toEqual([]);
  });

  it('a flapping connection to Redis never takes the proxy down', async () => {
    // Cut and restored at odd moments: mid-handshake, mid-resubscribe, mid-reconcile.
    for (let i = 0; i < 60; i++) {
      fleet.relay.cut();
      await sleep(5 + ((i * 37) % 60));
      fleet.relay.restore();
      await sleep(5 + ((i * 53) % 90));
    }
    expect(fleet.a.alive, fleet.a.output.slice(-3000)).toBe(true);
    await eventuallyConnected(fleet.a);
    const switched = await fleet.b.switchTo('green');
    expect(switched.status, switched.text).toBe(200);
    await fleet.converged(RECONCILE_MS + SLACK_MS);
    expect(fleet.a.alive).toBe(true);
    expect(fleet.failures).toEqual([]);
  });

  it('Redis killed in the middle of a switch and restarted empty: the proxies restore their state and converge', async () => {
    const first = await fleet.b.switchTo('green');
    expect(first.status, first.text).toBe(200);
    await fleet.converged(RECONCILE_MS + SLACK_MS);

    slots.blue.setHealth({ delayMs: 400 });
    const switching = fleet.a.switchTo('blue');
    await sleep(150);
    await redis.kill();
    const answer = await switching;
    expect(answer.status).toBe(503);
    expect(errorOf(answer).error).toBe('store_unavailable');
    await sleep(300);
    expect(await fleet.servedBy(fleet.a)).toBe('green');
    expect(await fleet.servedBy(fleet.b)).toBe('green');
    const during = await fleet.b.switchTo('blue', '&force=true');
    expect(during.status).toBe(503);

    // Restarted without persistence: the key is gone; the proxies put back the newest state they know.
    await redis.restart();
    const convergedMs = await fleet.converged(RECONNECT_MS + RECONCILE_MS + SLACK_MS);
    console.log(
      `restart: both proxies and the restored key agree ${convergedMs} ms after Redis was back`,
    );
    expect(await fleet.stored()).toEqual({ active: 'green', epoch: 1 });
    slots.blue.setHealth({ delayMs: 0 });
    await until(async () => (await fleet.a.switchTo('blue')).status === 200, {
      timeout: 10_000,
      what: 'a switch accepted once the restore grace is over',
    });
    await fleet.converged(RECONCILE_MS + SLACK_MS);
    expect(await fleet.stored()).toEqual({ active: 'blue', epoch: 2 });
    await sleep(100);
    fleet.expectOnlyCommitted({ 0: 'blue', 1: 'green', 2: 'blue' });
    expect(fleet.failures).toEqual([]);
  });
});

async function eventuallyConnected(proxy: ProxyProcess): Promise<void> {
  await until(async () => ((await proxy.status()).store as { connected: boolean }).connected, {
    timeout: RECONNECT_MS + RECONCILE_MS + SLACK_MS,
    what: 'the store connected again',
  });
}
