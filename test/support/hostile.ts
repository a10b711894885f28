import { expect } from 'vitest';
import { converse, type RawResponse } from './raw-client.js';
import type { FakeSlot } from './fake-slot.js';
import type { ProxyProcess } from '../../harness/proxy-process.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Shared checks of the hostile-input suites: the proxy's own error answer,
 * and that after a hostile exchange the proxy is up and serves the next
 * request on a new connection normally, as the fake slot (raw wire) proves.
 */

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
