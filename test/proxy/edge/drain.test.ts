import { Agent } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Slot } from '../../../proxy/state/slot-state.js';
import { twoSlotsAndEdge, type SlotsAndEdge } from '../../support/edge.js';
import { headerOf } from '../../support/fake-slot.js';
import { until } from '../../support/wait.js';
import { httpRequest } from '../../../harness/http-client.js';

async function activate(t: SlotsAndEdge, slot: Slot): Promise<void> {
  if (t.edge.registry.current.active !== slot) await t.switchTo(slot);
}

function openWebSocket(url: string): Promise<{ ws: WebSocket; slotHeader: string | undefined }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    let slotHeader: string | undefined;
    ws.once('upgrade', (res) => (slotHeader = res.headers['x-togather-slot'] as string));
    ws.once('open', () => resolve({ ws, slotHeader }));
    ws.once('error', reject);
  });
}

function nextMessage(ws: WebSocket): Promise<string> {
  return new Promise((resolve) => ws.once('message', (data) => resolve(String(data))));
}

async function roundTrip(ws: WebSocket, text: string): Promise<string> {
  const reply = nextMessage(ws);
  ws.send(text);
  return reply;
}

describe('switch and drain (DRAIN_TIMEOUT 10s)', () => {
  let t: SlotsAndEdge;

  beforeAll(async () => {
    t = await twoSlotsAndEdge({ env: { DRAIN_TIMEOUT: '10s' } });
  });

  afterAll(() => t?.close());

  it('lets a request in flight on the old slot finish while new requests go to the new slot', async () => {
    await activate(t, 'blue');
    const inFlight = httpRequest(`${t.url}/slow?ms=3000`, {
      headers: { 'x-request-id': 'long-1' },
    });
    await until(() => t.blue.requests.some((r) => headerOf(r, 'x-request-id') === 'long-1'), {
      timeout: 15_000,
    });

    const state = await t.switchTo('green', 'drain-test');
    expect(t.edge.traffic('blue')).toMatchObject({ inflight: 1, draining: true });

    const after = await httpRequest(`${t.url}/echo/after-switch`);
    expect(after.status).toBe(200);
    expect(after.headers['x-togather-slot']).toBe('green');
    expect(JSON.parse(after.body).slot).toBe('green');

    const answer = await inFlight;
    expect(answer.status).toBe(200);
    expect(answer.headers['x-togather-slot']).toBe('blue');
    expect(JSON.parse(answer.body)).toEqual({ slot: 'blue', path: '/slow?ms=3000' });

    const line = await t.logs.waitFor((l) => l.msg === 'slot switched' && l.epoch === state.epoch);
    expect(line).toMatchObject({
      level: 30,
      actor: 'drain-test',
      from: 'blue',
      to: 'green',
      epoch: state.epoch,
      drain: { slot: 'blue', result: 'drained', aborted_requests: 0, closed_websockets: 0 },
    });
    expect(t.edge.traffic('blue')).toMatchObject({ inflight: 0, draining: false });
    // The drained slot's pooled connections are closed once nothing runs on it.
    await until(() => t.blue.openConnections === 0, { timeout: 15_000 });
  });

  it('never closes a keep-alive client connection at a switch', async () => {
    await activate(t, 'blue');
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const before = await httpRequest(`${t.url}/echo/one`, { agent });
      expect(before.headers['x-togather-slot']).toBe('blue');
      expect(before.headers.connection).toBe('keep-alive');

      await t.switchTo('green');
      const after = await httpRequest(`${t.url}/echo/two`, { agent });
      expect(after.headers['x-togather-slot']).toBe('green');
      expect(after.reusedSocket).toBe(true);
      expect(after.localPort).toBe(before.localPort);

      await t.switchTo('blue');
      const back = await httpRequest(`${t.url}/echo/three`, { agent });
      expect(back.headers['x-togather-slot']).toBe('blue');
      expect(back.localPort).toBe(before.localPort);
    } finally {
      agent.destroy();
    }
  });
});

describe('drain timeout (DRAIN_TIMEOUT 1500ms)', () => {
  const DRAIN_MS = 1500;
  let t: SlotsAndEdge;

  beforeAll(async () => {
    t = await twoSlotsAndEdge({ env: { DRAIN_TIMEOUT: `${DRAIN_MS}ms` } });
  });

  afterAll(() => t?.close());

  it('aborts a request still running on the old slot at the drain timeout', async () => {
    await activate(t, 'blue');
    const abortedBefore = t.blue.aborted;
    const inFlight = httpRequest(`${t.url}/slow?ms=60000`, {
      headers: { 'x-request-id': 'too-long-1' },
    });
    await until(() => t.blue.requests.some((r) => headerOf(r, 'x-request-id') === 'too-long-1'), {
      timeout: 15_000,
    });
    const state = await t.switchTo('green');

    const answer = await inFlight;
    expect(answer.status).toBe(502);
    expect(answer.headers['x-togather-slot']).toBe('blue');
    expect(JSON.parse(answer.body)).toEqual({
      error: 'drain_timeout',
      slot: 'blue',
      request_id: 'too-long-1',
    });
    await until(() => t.blue.aborted > abortedBefore, { timeout: 15_000 });

    const warning = await t.logs.waitFor(
      (l) => l.request_id === 'too-long-1' && l.level === 40 && l.msg !== 'upstream request failed',
    );
    expect(warning).toMatchObject({ slot: 'blue', method: 'GET', path: '/slow' });
    const line = await t.logs.waitFor((l) => l.msg === 'slot switched' && l.epoch === state.epoch);
    expect(line.drain).toMatchObject({ slot: 'blue', result: 'timeout', aborted_requests: 1 });
    expect(await t.metrics()).toMatch(
      /togather_proxy_upstream_errors_total\{slot="blue",reason="drain_aborted"\} 1/,
    );
  });

  it('stops draining a slot that becomes active again', async () => {
    await activate(t, 'blue');
    const inFlight = httpRequest(`${t.url}/slow?ms=${DRAIN_MS + 1000}`, {
      headers: { 'x-request-id': 'back-again-1' },
    });
    await until(() => t.blue.requests.some((r) => headerOf(r, 'x-request-id') === 'back-again-1'), {
      timeout: 15_000,
    });
    const away = await t.switchTo('green');
    await t.switchTo('blue');

    const answer = await inFlight;
    expect(answer.status).toBe(200);
    expect(answer.headers['x-togather-slot']).toBe('blue');
    const line = await t.logs.waitFor((l) => l.msg === 'slot switched' && l.epoch === away.epoch);
    expect(line.drain).toMatchObject({ slot: 'blue', result: 'cancelled', aborted_requests: 0 });
  });

  it('keeps a WebSocket on the old slot open through the switch, then closes it with 1012', async () => {
    await activate(t, 'blue');
    const { ws, slotHeader } = await openWebSocket(`ws://127.0.0.1:${t.port}/live`);
    expect(slotHeader).toBe('blue');
    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
    );
    expect(await roundTrip(ws, 'before')).toBe('blue:before');

    const state = await t.switchTo('green');
    expect(t.edge.traffic('blue')).toMatchObject({ websockets: 1, draining: true });
    // Not cut at the switch: the tunnel to blue still carries messages.
    expect(await roundTrip(ws, 'after')).toBe('blue:after');
    const fresh = await openWebSocket(`ws://127.0.0.1:${t.port}/live`);
    expect(fresh.slotHeader).toBe('green');
    expect(await roundTrip(fresh.ws, 'new')).toBe('green:new');

    expect(await closed).toEqual({ code: 1012, reason: 'service restart' });
    const line = await t.logs.waitFor((l) => l.msg === 'slot switched' && l.epoch === state.epoch);
    expect(line.drain).toMatchObject({ slot: 'blue', result: 'timeout', closed_websockets: 1 });
    await until(() => t.edge.traffic('blue').websockets === 0, { timeout: 15_000 });
    // The WebSocket on the active slot is untouched by the drain of the other.
    expect(fresh.ws.readyState).toBe(WebSocket.OPEN);
    fresh.ws.close();
  });
});
