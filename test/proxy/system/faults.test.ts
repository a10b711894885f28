import { Agent, request } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '../../support/raw-client.js';
import { FakeSlot } from '../../support/fake-slot.js';
import { until } from '../../support/wait.js';
import { ProxyProcess } from '../../../harness/proxy-process.js';
import { UpstreamProcess } from '../../../harness/upstream-process.js';

/**
 * Faults of the slots behind a `togather proxy` process: the active slot
 * killed under load and started again, a slot that accepts and never
 * answers (1,000 times, with no socket left behind), and slots that answer
 * with something that is not HTTP.
 */

interface Outcome {
  at: number;
  /** From sending to the end of the answer (or the error). */
  ms: number;
  status: number;
  slot: string | undefined;
  body: string;
  error?: string;
}

function get(agent: Agent, url: string, timeoutMs = 10_000): Promise<Outcome> {
  return new Promise((resolve) => {
    const at = Date.now();
    const req = request(url, { agent, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        const slot = res.headers['x-togather-slot'];
        resolve({
          at,
          ms: Date.now() - at,
          status: res.statusCode ?? 0,
          slot: typeof slot === 'string' ? slot : undefined,
          body,
        });
      });
      res.on('error', (error) =>
        resolve({
          at,
          ms: Date.now() - at,
          status: 0,
          slot: undefined,
          body,
          error: error.message,
        }),
      );
    });
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', (error) =>
      resolve({
        at,
        ms: Date.now() - at,
        status: 0,
        slot: undefined,
        body: '',
        error: error.message,
      }),
    );
    req.end();
  });
}

/** `clients` loops sending GET `url` until stopped; every outcome kept. */
function startLoad(url: string, clients: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const outcomes: Outcome[] = [];
  let running = true;
  const loops = Array.from({ length: clients }, async () => {
    while (running) outcomes.push(await get(agent, url));
  });
  return {
    outcomes,
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return outcomes;
    },
  };
}

describe('the active slot killed under load', () => {
  let blue: UpstreamProcess;
  let green: FakeSlot;
  let proxy: ProxyProcess;

  beforeAll(async () => {
    blue = await UpstreamProcess.start('blue');
    green = await FakeSlot.start('green', { wire: 'raw' });
    proxy = await ProxyProcess.start({
      blueUrl: blue.url,
      greenUrl: green.url,
      env: { UPSTREAM_TIMEOUT: '3s', ACCESS_LOG: 'off', LOG_LEVEL: 'info' },
    });
  });

  afterAll(async () => {
    await proxy?.stop();
    await blue?.stop();
    await green?.close();
  });

  it('answers 502 tagged blue only while blue is down, never touches green, recovers when blue returns', async () => {
    const load = startLoad(`${proxy.url}/small`, 8);
    await sleep(800);
    const killedAt = Date.now();
    await blue.kill();
    await sleep(1000);
    await blue.start();
    const restartedAt = Date.now();
    // Pooled sockets to the dead process are gone; new ones reach the new process.
    await until(() => load.outcomes.some((o) => o.at > restartedAt && o.status === 200), {
      timeout: 10_000,
      what: 'a 200 after the restart',
    });
    const recoveredAt = Date.now();
    await sleep(800);
    const outcomes = await load.stop();

    expect(outcomes.filter((o) => o.error !== undefined)).toEqual([]);
    const failures = outcomes.filter((o) => o.status !== 200);
    expect(failures.length).toBeGreaterThan(0);
    for (const failure of failures) {
      expect(failure.status).toBe(502);
      expect(failure.slot).toBe('blue');
      const body = JSON.parse(failure.body) as Record<string, unknown>;
      expect(['upstream_unreachable', 'upstream_reset']).toContain(body.error);
      expect(body.slot).toBe('blue');
      // Only requests in flight at the kill or sent while blue was down failed.
      expect(failure.at + failure.ms).toBeGreaterThanOrEqual(killedAt);
      expect(failure.at).toBeLessThanOrEqual(recoveredAt);
    }
    const served = outcomes.filter((o) => o.status === 200);
    expect(served.every((o) => o.slot === 'blue')).toBe(true);
    expect(served.filter((o) => o.at > recoveredAt).length).toBeGreaterThan(0);
    expect(green.traffic()).toEqual([]);
    expect(proxy.alive).toBe(true);
    expect((await proxy.status()).active).toBe('blue');
    expect(await proxy.metric('togather_proxy_inflight_requests', 'slot="blue"')).toBe(0);
  });
});

/** A slot that accepts connections, reads what comes and never answers. */
class BlackHole {
  readonly sockets = new Set<Socket>();
  accepted = 0;

  private constructor(private readonly server: Server) {}

  static async start(): Promise<BlackHole> {
    const server = createServer();
    const hole = new BlackHole(server);
    server.on('connection', (socket) => {
      hole.accepted++;
      hole.sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => hole.sockets.delete(socket));
      // Reading (and dropping) is what lets it see the proxy close its side.
      socket.resume();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    return hole;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

describe('a slot that accepts and never answers', () => {
  let hole: BlackHole;
  let green: FakeSlot;
  let proxy: ProxyProcess;

  beforeAll(async () => {
    hole = await BlackHole.start();
    green = await FakeSlot.start('green', { wire: 'raw' });
    proxy = await ProxyProcess.start({
      blueUrl: hole.url,
      greenUrl: green.url,
      env: { UPSTREAM_TIMEOUT: '300ms', ACCESS_LOG: 'off', LOG_LEVEL: 'info' },
    });
  });

  afterAll(async () => {
    await proxy?.stop();
    await hole?.close();
    await green?.close();
  });

  it('answers 504 at UPSTREAM_TIMEOUT 1,000 times and keeps no socket', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 100 });
    const baseline = proxy.openFds();
    const outcomes: Outcome[] = [];
    await Promise.all(
      Array.from({ length: 100 }, async () => {
        for (let i = 0; i < 10; i++) outcomes.push(await get(agent, `${proxy.url}/hang`));
      }),
    );
    agent.destroy();

    expect(outcomes).toHaveLength(1000);
    const kinds = new Map<string, number>();
    for (const o of outcomes) {
      const key = `${o.status} ${o.slot} ${o.error ?? (JSON.parse(o.body) as { error: string }).error}`;
      kinds.set(key, (kinds.get(key) ?? 0) + 1);
    }
    expect(Object.fromEntries(kinds)).toEqual({ '504 blue upstream_timeout': 1000 });
    // Each waited for UPSTREAM_TIMEOUT (timer granularity aside).
    expect(Math.min(...outcomes.map((o) => o.ms))).toBeGreaterThanOrEqual(290);
    expect(hole.accepted).toBeGreaterThanOrEqual(100);

    // Every upstream socket was destroyed at its timeout, nothing is left open.
    await until(() => hole.sockets.size === 0, {
      timeout: 5000,
      what: 'the black hole sees no open socket',
    });
    await until(() => proxy.openFds() <= baseline + 5, {
      timeout: 5000,
      what: `the proxy's open descriptors back to ${baseline} (+5)`,
    });
    expect(await proxy.metric('togather_proxy_inflight_requests', 'slot="blue"')).toBe(0);
    expect(
      await proxy.metric('togather_proxy_upstream_errors_total', 'slot="blue",reason="timeout"'),
    ).toBe(1000);
    expect(green.traffic()).toEqual([]);
    expect(proxy.alive).toBe(true);
  });
});

describe('slots that answer with something that is not HTTP', () => {
  const servers: Server[] = [];
  const sockets = new Set<Socket>();
  let green: FakeSlot;

  beforeAll(async () => {
    green = await FakeSlot.start('green', { wire: 'raw' });
  });

  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    for (const server of servers) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    await green?.close();
  });

  /** A TCP slot that answers every connection's first bytes with `answer`, then closes. */
  async function rawSlot(answer: Buffer | string): Promise<string> {
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
      socket.once('data', () => socket.end(answer));
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it.each([
    ['garbage bytes', 'this is not http\r\n\r\n'],
    ['a header over the client limit', `HTTP/1.1 200 OK\r\nX-Big: ${'h'.repeat(70_000)}\r\n\r\n`],
    [
      'Content-Length with Transfer-Encoding',
      'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    ],
    [
      'two different Content-Length',
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
    ],
  ])('502 upstream_invalid_response for %s', async (_name, answer) => {
    const proxy = await ProxyProcess.start({
      blueUrl: await rawSlot(answer),
      greenUrl: green.url,
      env: { ACCESS_LOG: 'off', LOG_LEVEL: 'warn' },
    });
    try {
      const agent = new Agent({ keepAlive: false });
      const outcome = await get(agent, `${proxy.url}/bad-answer`);
      expect(outcome.status).toBe(502);
      expect(outcome.slot).toBe('blue');
      expect(JSON.parse(outcome.body)).toMatchObject({
        error: 'upstream_invalid_response',
        slot: 'blue',
      });
      expect(proxy.alive).toBe(true);
    } finally {
      await proxy.stop();
    }
  });
});
