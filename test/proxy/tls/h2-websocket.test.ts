import { constants } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closedPort } from '../../../harness/ports.js';
import { startFakeSlots, type FakeSlot } from '../../support/fake-slot.js';
import { bodyOf, H2Client } from '../../support/h2-client.js';
import { startTlsProxy, type TlsProxy } from '../../support/tls-proxy.js';
import { until } from '../../support/wait.js';
import { StreamWebSocket } from '../../support/websocket-client.js';

/**
 * WebSockets over HTTP/2 (RFC 8441 extended CONNECT): a node:http2 client
 * opens `:method CONNECT` + `:protocol websocket` streams on the TLS
 * listener, the proxy bridges each to the slot's real WebSocket server (the
 * fake slot's `ws`) as an HTTP/1.1 handshake, and frames go both ways.
 */

interface Edge {
  slots: { blue: FakeSlot; green: FakeSlot };
  tls: TlsProxy;
  client: H2Client;
}

/** Both slots, the TLS edge and one HTTP/2 connection to it, for a describe. */
function h2Edge(env: Record<string, string> = {}, green?: () => Promise<string>): () => Edge {
  let edge: Edge | undefined;
  beforeAll(async () => {
    const slots = await startFakeSlots();
    const greenUrl = green === undefined ? slots.green.url : await green();
    const tls = await startTlsProxy({ blueUrl: slots.blue.url, greenUrl }, env);
    edge = { slots, tls, client: await H2Client.connect(tls.tlsUrl, tls.ca) };
  });
  afterAll(async () => {
    edge?.client.destroy();
    await edge?.tls.stop();
    await Promise.all([edge?.slots.blue.close(), edge?.slots.green.close()]);
  });
  return () => edge!;
}

async function openOn(client: H2Client, path: string, headers: Record<string, string> = {}) {
  const answer = await client.webSocket(path, headers);
  expect(answer.status).toBe(200);
  return { ...answer, ws: new StreamWebSocket(answer.stream) };
}

describe('WebSockets over HTTP/2', () => {
  const edge = h2Edge({ CONTENT_SECURITY_POLICY: "default-src 'self'" });

  it('advertises SETTINGS_ENABLE_CONNECT_PROTOCOL', async () => {
    expect(await edge().client.connectProtocolEnabled()).toBe(true);
  });

  it('echoes text and binary frames through the slot, with the slot header on the 200', async () => {
    const { tls, client } = edge();
    const { headers, ws } = await openOn(client, '/live?room=1', { 'x-request-id': 'h2-ws-1' });
    expect(headers['x-togather-slot']).toBe('blue');
    expect(headers['x-request-id']).toBe('h2-ws-1');
    expect(headers['strict-transport-security']).toBe('max-age=31536000');
    // The HTTP/1.1 handshake's proof stays between the proxy and the slot.
    expect(headers['sec-websocket-accept']).toBeUndefined();
    expect(headers.upgrade).toBeUndefined();

    ws.send('hello');
    expect(await ws.nextText()).toBe('blue:hello');
    const big = Buffer.alloc(300 * 1024, 'z');
    ws.send(big);
    const echoed = (await ws.next()).payload;
    expect(echoed.subarray(0, 5).toString()).toBe('blue:');
    expect(echoed.subarray(5).equals(big)).toBe(true);

    expect(tls.proxy.edge.traffic('blue')).toMatchObject({ websockets: 1, inflight: 0 });
    ws.close(1000, 'bye');
    expect(await ws.closed).toEqual({ code: 1000, reason: 'bye' });
    await until(() => tls.proxy.edge.traffic('blue').websockets === 0, { timeout: 15_000 });

    const line = await tls.logs.waitFor((l) => l.request_id === 'h2-ws-1' && l.msg === 'request');
    expect(line).toMatchObject({ slot: 'blue', method: 'CONNECT', path: '/live', status: 200 });
    const metrics = await tls.admin('/metrics');
    expect(metrics.text).toMatch(
      /togather_proxy_requests_total\{slot="blue",method="CONNECT",code="200"\} [1-9]/,
    );
  });

  it('carries several WebSockets on one connection at once', async () => {
    const { client } = edge();
    const [a, b] = await Promise.all([openOn(client, '/a'), openOn(client, '/b')]);
    a.ws.send('one');
    b.ws.send('two');
    expect(await Promise.all([a.ws.nextText(), b.ws.nextText()])).toEqual(['blue:one', 'blue:two']);
    a.ws.close(1000);
    b.ws.close(1000);
    await Promise.all([a.ws.closed, b.ws.closed]);
  });

  it('sends the slot an HTTP/1.1 handshake with the forwarded headers', async () => {
    const { slots, tls, client } = edge();
    let seen: Record<string, string | string[] | undefined> = {};
    let seenUrl = '';
    slots.blue.wss.once('headers', (_headers, req) => {
      seen = req.headers;
      seenUrl = req.url ?? '';
    });
    const { ws } = await openOn(client, '/live?x=1', {
      ':authority': `events.togather.test:${tls.tlsPort}`,
      'x-togather-slot': 'green',
      'x-forwarded-for': '198.51.100.7',
      'sec-websocket-protocol': 'chat',
    });
    expect(seenUrl).toBe('/live?x=1');
    expect(seen['x-togather-slot']).toBeUndefined();
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('https');
    expect(seen['x-forwarded-port']).toBe(String(tls.tlsPort));
    expect(seen.host).toBe(`events.togather.test:${tls.tlsPort}`);
    expect(String(seen.connection).toLowerCase()).toBe('upgrade');
    expect(seen.upgrade).toBe('websocket');
    expect(seen['sec-websocket-version']).toBe('13');
    expect(seen['sec-websocket-key']).toMatch(/^[A-Za-z0-9+/]{22}==$/);
    expect(seen['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    ws.close(1000);
    await ws.closed;
  });

  it('passes the subprotocol the slot chose and a close code the slot sends', async () => {
    const { client } = edge();
    const { headers, ws } = await openOn(client, '/live', { 'sec-websocket-protocol': 'chat' });
    expect(headers['sec-websocket-protocol']).toBe('chat');
    ws.send('close:4000');
    expect(await ws.closed).toEqual({ code: 4000, reason: 'asked to' });
  });

  it('relays the slot refusing the handshake, with the slot and security headers', async () => {
    const { tls, client } = edge();
    const answer = await client.webSocket('/ws-refused', { 'x-request-id': 'h2-ws-refused' });
    expect(answer.status).toBe(401);
    expect(answer.headers['x-togather-slot']).toBe('blue');
    expect(answer.headers['x-request-id']).toBe('h2-ws-refused');
    expect(answer.headers['content-security-policy']).toBe("default-src 'self'");
    expect(answer.headers['x-content-type-options']).toBe('nosniff');
    await bodyOf(answer.stream);
    // Nothing is left running on the slot for it.
    await until(() => tls.proxy.edge.traffic('blue').inflight === 0, { timeout: 15_000 });
    expect(tls.proxy.edge.traffic('blue').websockets).toBe(0);
  });

  it('ends the stream when the slot drops the WebSocket, and the slot side when the client resets', async () => {
    const { slots, tls, client } = edge();
    const dropped = await openOn(client, '/live');
    dropped.ws.send('hi');
    await dropped.ws.nextText();
    for (const ws of slots.blue.websockets) ws.terminate();
    expect(await dropped.ws.closed).toEqual({ code: 1006, reason: '' });
    await until(() => tls.proxy.edge.traffic('blue').websockets === 0, { timeout: 15_000 });

    const reset = await openOn(client, '/live');
    reset.ws.send('hi');
    await reset.ws.nextText();
    expect(slots.blue.websockets.size).toBe(1);
    reset.stream.close(constants.NGHTTP2_CANCEL);
    await until(() => slots.blue.websockets.size === 0, { timeout: 15_000 });
    await until(() => tls.proxy.edge.traffic('blue').websockets === 0, { timeout: 15_000 });
  });

  it('answers 400 unsupported_upgrade to a :protocol other than websocket', async () => {
    const { slots, client } = edge();
    const before = slots.blue.requests.length;
    const stream = client.session.request({
      ':method': 'CONNECT',
      ':protocol': 'webtransport',
      ':scheme': 'https',
      ':path': '/live',
      'x-request-id': 'h2-wt-1',
    });
    const head = await new Promise<Record<string, unknown>>((resolve) =>
      stream.once('response', resolve),
    );
    expect(head[':status']).toBe(400);
    expect(head['x-togather-slot']).toBe('blue');
    expect(JSON.parse(await bodyOf(stream))).toEqual({
      error: 'unsupported_upgrade',
      slot: 'blue',
      request_id: 'h2-wt-1',
    });
    expect(slots.blue.requests.length).toBe(before);
  });
});

describe('a WebSocket over HTTP/2 to a slot that is down', () => {
  const edge = h2Edge({}, async () => `http://127.0.0.1:${await closedPort()}`);

  it('answers 502 upstream_unreachable as JSON, like HTTP/1.1', async () => {
    const { tls, client } = edge();
    await tls.switchTo('green');
    const answer = await client.webSocket('/live', { 'x-request-id': 'h2-ws-502' });
    expect(answer.status).toBe(502);
    expect(answer.headers['x-togather-slot']).toBe('green');
    expect(JSON.parse(await bodyOf(answer.stream))).toEqual({
      error: 'upstream_unreachable',
      slot: 'green',
      request_id: 'h2-ws-502',
    });
    const metrics = await tls.admin('/metrics');
    expect(metrics.text).toMatch(
      /togather_proxy_requests_total\{slot="green",method="CONNECT",code="502"\} 1/,
    );
    expect(tls.proxy.edge.traffic('green')).toMatchObject({ websockets: 0, inflight: 0 });
  });
});

describe('a switch during a WebSocket over HTTP/2', () => {
  const edge = h2Edge({ DRAIN_TIMEOUT: '1500ms' });

  it('keeps the open WebSocket on the old slot until the drain times out, then closes it with 1012', async () => {
    const { tls, client } = edge();
    const old = await openOn(client, '/live');
    old.ws.send('before');
    expect(await old.ws.nextText()).toBe('blue:before');

    await tls.switchTo('green');
    // New WebSockets go to the new slot, on the same connection.
    const fresh = await openOn(client, '/live');
    expect(fresh.headers['x-togather-slot']).toBe('green');
    fresh.ws.send('new');
    expect(await fresh.ws.nextText()).toBe('green:new');

    // The switch cut nothing: the old one still talks to blue while the drain waits for it.
    old.ws.send('after the switch');
    expect(await old.ws.nextText()).toBe('blue:after the switch');
    expect(tls.proxy.edge.traffic('blue')).toMatchObject({ websockets: 1, draining: true });

    expect(await old.ws.closed).toEqual({ code: 1012, reason: 'service restart' });
    await until(() => !tls.proxy.edge.traffic('blue').draining, { timeout: 15_000 });
    expect(tls.proxy.edge.traffic('blue').websockets).toBe(0);
    const drained = await tls.logs.waitFor((l) => l.msg === 'slot switched' && l.to === 'green');
    expect(drained.drain).toMatchObject({ result: 'timeout', closed_websockets: 1 });

    // The one on the new slot is untouched.
    fresh.ws.send('still here');
    expect(await fresh.ws.nextText()).toBe('green:still here');
    fresh.ws.close(1000);
    await fresh.ws.closed;
  });

  it('lets the drain end as soon as the old slot has no WebSocket left', async () => {
    const { tls, client } = edge();
    const old = await openOn(client, '/live');
    expect(old.headers['x-togather-slot']).toBe('green');
    await tls.switchTo('blue');
    expect(tls.proxy.edge.traffic('green')).toMatchObject({ websockets: 1, draining: true });
    old.ws.close(1000, 'done');
    expect(await old.ws.closed).toEqual({ code: 1000, reason: 'done' });
    const drained = await tls.logs.waitFor((l) => l.msg === 'slot switched' && l.to === 'blue');
    expect(drained.drain).toMatchObject({ result: 'drained', closed_websockets: 0 });
  });
});

describe('shutdown with WebSockets over HTTP/2', () => {
  it('closes them with 1001', async () => {
    const slots = await startFakeSlots();
    const tls = await startTlsProxy({ blueUrl: slots.blue.url, greenUrl: slots.green.url });
    const client = await H2Client.connect(tls.tlsUrl, tls.ca);
    try {
      const { ws } = await openOn(client, '/live');
      const stopped = tls.stop();
      expect(await ws.closed).toEqual({ code: 1001, reason: 'proxy shutting down' });
      await stopped;
    } finally {
      client.destroy();
      await Promise.all([slots.blue.close(), slots.green.close()]);
    }
  });
});
