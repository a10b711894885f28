import { Agent, request } from 'node:http';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { otherSlot, type Slot } from '../../../common/slot.js';
import { startFakeSlots, type FakeSlot } from '../../support/fake-slot.js';
import { freePort, waitForPort } from '../../../harness/ports.js';
import { startCli, waitForHttp } from '../../support/processes.js';
import { valueOf } from '../../support/wait.js';
import { WatchedProcess } from '../../../harness/child-process.js';
import { RedisProcess } from '../../../harness/redis-process.js';

/**
 * Two `togather proxy` processes on one Redis (issue 3, Fleet and Redis
 * outage): a switch through one is served by the other at once, concurrent
 * switches end on one state, and a Redis outage costs no request.
 */

const KEY = 'fleet-test-admin-key-0123456789abcdef';
const PREFIX = `fleet-${process.pid}:`;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** One HTTP exchange over a keep-alive agent (the hot path of a real client). */
function exchange(
  agent: Agent,
  method: string,
  url: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent, headers, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

interface StatusBody {
  active: Slot;
  previous: Slot | null;
  epoch: number;
  switched_at: string;
  store: { kind: string; location: string; connected: boolean };
}

interface HistoryEntry {
  time: string;
  actor: string;
  from: Slot | null;
  to: Slot;
  epoch: number;
  result: string;
}

class FleetProxy {
  readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });

  private constructor(
    readonly name: string,
    readonly process: WatchedProcess,
    readonly url: string,
    readonly adminUrl: string,
  ) {}

  static async start(name: string, redis: RedisProcess, slots: Record<Slot, FakeSlot>) {
    const port = await freePort();
    const adminPort = await freePort();
    const child = startCli(['proxy'], {
      PROXY_HOST: '127.0.0.1',
      PROXY_PORT: String(port),
      ADMIN_HOST: '127.0.0.1',
      ADMIN_PORT: String(adminPort),
      ADMIN_API_KEY: KEY,
      BLUE_URL: slots.blue.url,
      GREEN_URL: slots.green.url,
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: PREFIX,
      DRAIN_TIMEOUT: '2s',
      ACCESS_LOG: 'off',
      LOG_LEVEL: 'info',
    });
    const proxy = new FleetProxy(
      name,
      child,
      `http://127.0.0.1:${port}`,
      `http://127.0.0.1:${adminPort}`,
    );
    try {
      await waitForHttp(`${proxy.adminUrl}/healthz`);
      await waitForPort(port);
    } catch (error) {
      await child.stop();
      throw new Error(`proxy ${name} did not start: ${String(error)}\n${child.stderr}`);
    }
    return proxy;
  }

  admin(method: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
    return exchange(this.agent, method, `${this.adminUrl}${path}`, {
      authorization: `Bearer ${KEY}`,
      ...headers,
    });
  }

  switchTo(slot: Slot, actor = 'fleet-test'): Promise<Answer> {
    return this.admin('POST', `/admin/switch?slot=${slot}`, { 'x-actor': actor });
  }

  async status(): Promise<StatusBody> {
    const answer = await this.admin('GET', '/admin/status');
    expect(answer.status).toBe(200);
    return JSON.parse(answer.text) as StatusBody;
  }

  async history(limit: number): Promise<HistoryEntry[]> {
    const answer = await this.admin('GET', `/admin/history?limit=${limit}`);
    expect(answer.status).toBe(200);
    const body = JSON.parse(answer.text) as { history?: HistoryEntry[] } | HistoryEntry[];
    return Array.isArray(body) ? body : (body.history ?? []);
  }

  async metric(name: string): Promise<string | undefined> {
    const answer = await exchange(this.agent, 'GET', `${this.adminUrl}/metrics`);
    const line = answer.text.split('\n').find((l) => l.startsWith(`${name} `));
    return line?.slice(name.length + 1).trim();
  }

  /** The slot that served one public request. */
  async servedBy(): Promise<string | undefined> {
    const answer = await exchange(this.agent, 'GET', `${this.url}/fleet-probe`);
    const slot = answer.headers['x-togather-slot'];
    return typeof slot === 'string' ? slot : undefined;
  }

  async stop(): Promise<void> {
    this.agent.destroy();
    await this.process.stop('SIGTERM');
  }
}

/** Keeps a few concurrent clients busy through both proxies and counts what failed. */
function startLoad(proxies: FleetProxy[], clients = 4) {
  let running = true;
  let ok = 0;
  const failures: string[] = [];
  const loops = Array.from({ length: clients }, async (_, i) => {
    const proxy = proxies[i % proxies.length]!;
    while (running) {
      try {
        const answer = await exchange(proxy.agent, 'GET', `${proxy.url}/load/${i}`);
        const slot = answer.headers['x-togather-slot'];
        if (answer.status === 200 && (slot === 'blue' || slot === 'green')) ok++;
        else failures.push(`${proxy.name}: ${answer.status} ${String(slot)} ${answer.text}`);
      } catch (error) {
        failures.push(`${proxy.name}: ${String(error)}`);
      }
    }
  });
  return {
    get ok() {
      return ok;
    },
    async stop() {
      running = false;
      await Promise.all(loops);
      return { ok, failures };
    },
  };
}

/** `read` until `accept` takes its value; the failure shows the last value read. */
async function eventually<T>(
  read: () => Promise<T>,
  accept: (value: T) => boolean,
  timeoutMs: number,
  what: string,
): Promise<T> {
  let last: T | undefined;
  try {
    return await valueOf(
      async () => {
        last = await read();
        return accept(last) ? last : undefined;
      },
      { timeout: timeoutMs, what },
    );
  } catch (error) {
    throw new Error(`${(error as Error).message} (last: ${JSON.stringify(last)})`);
  }
}

describe('fleet: two proxies on one Redis', () => {
  let redis: RedisProcess;
  let raw: Redis;
  let slots: Record<Slot, FakeSlot>;
  let proxies: [FleetProxy, FleetProxy];

  beforeAll(async () => {
    redis = await RedisProcess.start();
    raw = new Redis(redis.url, { lazyConnect: true });
    // Reconnects by itself after the outage test; nothing to report.
    raw.on('error', () => undefined);
    await raw.connect();
    slots = await startFakeSlots();
    proxies = await Promise.all([
      FleetProxy.start('p1', redis, slots),
      FleetProxy.start('p2', redis, slots),
    ]);
  });

  afterAll(async () => {
    await Promise.all((proxies ?? []).map((p) => p.stop()));
    await Promise.all(Object.values(slots ?? {}).map((s) => s.close()));
    raw?.disconnect();
    await redis?.stop();
  });

  /** The state in Redis, as the fleet's source of truth. */
  async function stored() {
    const hash = await raw.hgetall(`${PREFIX}slot`);
    return { active: hash.active, epoch: Number(hash.epoch) };
  }

  /** Both proxies report the stored state. */
  async function converged(timeoutMs: number) {
    return eventually(
      async () => {
        const [a, b] = await Promise.all(proxies.map((p) => p.status()));
        return { a: a!, b: b!, stored: await stored() };
      },
      ({ a, b, stored: s }) =>
        a.epoch === s.epoch &&
        b.epoch === s.epoch &&
        a.active === s.active &&
        b.active === s.active &&
        a.switched_at === b.switched_at,
      timeoutMs,
      'both proxies on the stored state',
    );
  }

  it('serves a switch made through one proxy from the other within 200 ms', async () => {
    const [p1, p2] = proxies;
    const before = await converged(5000);
    const target = otherSlot(before.a.active);
    expect(await p2.servedBy()).toBe(before.a.active);

    const answer = await p1.switchTo(target);
    const switchedAt = Date.now();
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.text)).toMatchObject({ active: target, changed: true });

    let firstOnTarget: number | undefined;
    while (firstOnTarget === undefined && Date.now() - switchedAt < 2000) {
      if ((await p2.servedBy()) === target) firstOnTarget = Date.now();
    }
    expect(firstOnTarget).toBeDefined();
    expect(firstOnTarget! - switchedAt).toBeLessThan(200);
    // And it stays there.
    for (let i = 0; i < 20; i++) expect(await p2.servedBy()).toBe(target);
  });

  it('ends 20 concurrent switches over both proxies on one state with increasing epochs', async () => {
    const before = await converged(5000);
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        proxies[i % 2]!.switchTo(i % 3 === 0 ? 'blue' : 'green', `racer-${i}`),
      ),
    );
    for (const answer of answers) {
      expect([200, 409]).toContain(answer.status);
      if (answer.status === 409)
        expect(JSON.parse(answer.text)).toMatchObject({ error: 'epoch_conflict' });
    }
    const changed = answers
      .filter((a) => a.status === 200)
      .map((a) => JSON.parse(a.text) as { changed: boolean; epoch: number })
      .filter((a) => a.changed);

    const after = await converged(3000);
    expect(after.a.epoch).toBe(before.a.epoch + changed.length);

    for (const proxy of proxies) {
      const switched = (await proxy.history(100))
        .filter((h) => h.actor.startsWith('racer-') && h.result === 'switched')
        .reverse();
      expect(switched.map((h) => h.epoch)).toEqual(
        Array.from({ length: changed.length }, (_, i) => before.a.epoch + 1 + i),
      );
      expect(switched.map((h) => h.epoch).sort((x, y) => x - y)).toEqual(
        changed.map((c) => c.epoch).sort((x, y) => x - y),
      );
    }
  });

  it('lets exactly one of 20 concurrent compare-and-set switches (expect_epoch) win', async () => {
    const before = await converged(5000);
    const epoch = before.a.epoch;
    const target = otherSlot(before.a.active);
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        proxies[i % 2]!.admin('POST', `/admin/switch?slot=${target}&expect_epoch=${epoch}`, {
          'x-actor': `cas-${i}`,
        }),
      ),
    );
    const winners = answers.filter((a) => a.status === 200);
    expect(winners).toHaveLength(1);
    expect(JSON.parse(winners[0]!.text)).toMatchObject({
      active: target,
      epoch: epoch + 1,
      changed: true,
    });
    for (const loser of answers.filter((a) => a.status !== 200)) {
      expect(loser.status).toBe(409);
      const body = JSON.parse(loser.text) as Record<string, unknown>;
      // Refused before writing (it already saw the new epoch) or by the compare-and-set itself.
      expect([
        `expected epoch ${epoch} but the state is at epoch ${epoch + 1}`,
        `expected epoch ${epoch} but another switch moved the state to epoch ${epoch + 1}`,
      ]).toContain(body.message);
      expect(body).toEqual({
        error: 'epoch_conflict',
        message: body.message,
        slot: target,
        active: target,
        epoch: epoch + 1,
      });
    }
    const after = await converged(3000);
    expect(after.a).toMatchObject({ active: target, epoch: epoch + 1 });
  });

  it('keeps serving through a Redis outage, refuses switches with 503, converges after', async () => {
    const [p1, p2] = proxies;
    const before = await converged(5000);
    const active = before.a.active;
    const target = otherSlot(active);
    const load = startLoad(proxies);
    await eventually(
      async () => load.ok,
      (n) => n >= 50,
      5000,
      'load running',
    );

    await redis.kill();
    try {
      for (const proxy of proxies) {
        await eventually(
          () => proxy.status(),
          (s) => !s.store.connected,
          5000,
          `${proxy.name} sees the store down`,
        );
        expect(await proxy.metric('togather_proxy_store_up')).toBe('0');
        const refused = await proxy.switchTo(target);
        expect(refused.status).toBe(503);
        expect(JSON.parse(refused.text)).toEqual({
          error: 'store_unavailable',
          message: `the slot store is unavailable (redis is not connected); traffic stays on ${active}`,
          slot: target,
          active,
          epoch: before.a.epoch,
        });
      }
      // Traffic keeps flowing on the last known slot while the store is down.
      const during = load.ok;
      await eventually(
        async () => load.ok,
        (n) => n >= during + 50,
        5000,
        'load during outage',
      );
      expect(await p1.servedBy()).toBe(active);
      expect(await p2.servedBy()).toBe(active);
    } finally {
      await redis.restart();
    }

    for (const proxy of proxies) {
      await eventually(
        () => proxy.status(),
        (s) => s.store.connected,
        10_000,
        `${proxy.name} sees the store back`,
      );
      expect(await proxy.metric('togather_proxy_store_up')).toBe('1');
    }
    // Redis came back empty: the proxies put their state back, then switches resume.
    const switched = await eventually(
      () => p2.switchTo(target),
      (a) => a.status === 200,
      10_000,
      'a switch after the outage',
    );
    expect(JSON.parse(switched.text)).toMatchObject({ active: target, epoch: before.a.epoch + 1 });
    const after = await converged(3000);
    expect(after.a).toMatchObject({ active: target, epoch: before.a.epoch + 1 });
    await eventually(
      () => p1.servedBy(),
      (s) => s === target,
      2000,
      'p1 serves the new slot',
    );

    // Redis restarted empty: a proxy put the fleet's state back (and said so).
    expect(`${p1.process.stdout}${p2.process.stdout}`).toContain('restored the newest known state');

    const result = await load.stop();
    expect(result.failures).toEqual([]);
    expect(result.ok).toBeGreaterThan(100);
  });
});
