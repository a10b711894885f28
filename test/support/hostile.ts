import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { converse, type RawResponse } from './raw-client.js';
import { FakeSlot } from './fake-slot.js';
import { ProxyProcess } from '../../harness/proxy-process.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The hostile-input suites' fixture and shared checks: recording slots on
 * the raw wire and a `togather proxy` process in front, the proxy's own
 * error answer, and that after a hostile exchange the proxy is up and serves
 * the next request on a new connection normally, as the fake slot proves.
 */

export interface RawSlots {
  readonly blue: FakeSlot;
  readonly green: FakeSlot;
}

export interface HostileEdge extends RawSlots {
  readonly proxy: ProxyProcess;
}

/** Blue and green recording slots (raw wire), started before the suite's tests and closed after them. */
export function rawSlots(): RawSlots {
  const slots: { blue?: FakeSlot; green?: FakeSlot } = {};
  beforeAll(async () => {
    [slots.blue, slots.green] = await Promise.all([
      FakeSlot.start('blue', { wire: 'raw' }),
      FakeSlot.start('green', { wire: 'raw' }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([slots.blue?.close(), slots.green?.close()]);
  });
  return {
    get blue() {
      return started(slots.blue);
    },
    get green() {
      return started(slots.green);
    },
  };
}

/**
 * A `togather proxy` process in front of `slots` (access log off, info logs,
 * then `env`), started before the suite's tests and stopped after them.
 */
export function proxyBefore(
  slots: RawSlots,
  env: Record<string, string> = {},
): { readonly proxy: ProxyProcess } {
  let proxy: ProxyProcess | undefined;
  beforeAll(async () => {
    proxy = await ProxyProcess.start({
      blueUrl: slots.blue.url,
      greenUrl: slots.green.url,
      env: { ACCESS_LOG: 'off', LOG_LEVEL: 'info', ...env },
    });
  });
  afterAll(async () => {
    await proxy?.stop();
  });
  return {
    get proxy() {
      return started(proxy);
    },
  };
}

/**
 * Both of the above, and after each test: the proxy serves the next client
 * normally on blue, blue read no bytes it could not frame, and green (idle)
 * got nothing. Blue's records are reset between tests.
 */
export function hostileEdge(env: Record<string, string> = {}): HostileEdge {
  const slots = rawSlots();
  const front = proxyBefore(slots, env);
  afterEach(async () => {
    try {
      await expectServedNormally(front.proxy, slots.blue);
      expect(slots.blue.unreadable).toEqual([]);
      expect(slots.green.traffic()).toEqual([]);
    } finally {
      slots.blue.reset();
    }
  });
  return {
    get blue() {
      return slots.blue;
    },
    get green() {
      return slots.green;
    },
    get proxy() {
      return front.proxy;
    },
  };
}

function started<T>(value: T | undefined): T {
  if (value === undefined) throw new Error('used before its beforeAll ran (or after it failed)');
  return value;
}

/** The proxy's own error answer: status, JSON `{error, slot, request_id}`, the slot header. */
export function expectProxyError(
  answer: RawResponse | undefined,
  status: number,
  error: string,
  slot = 'blue',
): void {
  expect(answer, 'an answer').toBeDefined();
  expect(answer!.status).toBe(status);
  expect(answer!.headers['x-togather-slot']).toBe(slot);
  expect(answer!.headers['content-type']).toBe('application/json; charset=utf-8');
  const body = JSON.parse(answer!.body) as Record<string, unknown>;
  expect(body).toEqual({ error, slot, request_id: expect.stringMatching(UUID) });
  expect(answer!.headers['x-request-id']).toBe(body.request_id);
}

/** A request on a new connection is forwarded to `upstream` and answered normally. */
export async function expectServedNormally(
  proxy: ProxyProcess,
  upstream: FakeSlot,
  path = '/after',
): Promise<void> {
  expect(proxy.alive, `the proxy is running\n${proxy.output.slice(-4000)}`).toBe(true);
  const before = upstream.received(path).length;
  const reply = await converse(
    proxy.port,
    `GET ${path} HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n\r\n`,
  );
  expect(reply.answers, reply.received).toHaveLength(1);
  const answer = reply.answers[0]!;
  expect(answer.status).toBe(200);
  expect(answer.headers['x-togather-slot']).toBe(upstream.slot);
  expect(JSON.parse(answer.body)).toMatchObject({ slot: upstream.slot, path });
  expect(upstream.received(path)).toHaveLength(before + 1);
}
