import { describe, expect, it } from 'vitest';
import { expectProxyError, hostileEdge } from '../../support/hostile.js';
import { converse } from '../../support/raw-client.js';
import type { RecordedRequest } from '../../support/fake-slot.js';

/**
 * Hop-by-hop abuse against a `togather proxy` process: Connection tokens
 * that name the headers the proxy adds or must drop, client-sent
 * X-Togather-Slot, h2c upgrades; and a slot answer that names the proxy's
 * own headers. The recording slot shows exactly which header lines arrived.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const edge = hostileEdge();

/** Every value of `name` (any case) the slot received, in order. */
function values(request: RecordedRequest | undefined, name: string): string[] {
  expect(request, 'the slot received the request').toBeDefined();
  return request!.headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
}

/** Sends one request that closes its connection and returns what the slot received. */
async function forward(path: string, headerLines: string, body = ''): Promise<RecordedRequest> {
  const reply = await converse(
    edge.proxy.port,
    `POST ${path} HTTP/1.1\r\nHost: edge.test\r\n${headerLines}Content-Length: ${body.length}\r\n\r\n${body}`,
  );
  expect(
    reply.answers.map((a) => a.status),
    reply.received,
  ).toEqual([200]);
  expect(reply.answers[0]!.headers['x-togather-slot']).toBe('blue');
  const [request] = edge.blue.received(path);
  expect(request, `the slot received ${path}`).toBeDefined();
  return request!;
}

describe('client Connection tokens', () => {
  it('Connection: close, X-Togather-Slot neither forwards the client value nor strips the answer header', async () => {
    const reply = await converse(
      edge.proxy.port,
      'GET /tag HTTP/1.1\r\nHost: edge.test\r\nConnection: close, X-Togather-Slot\r\nX-Togather-Slot: green\r\n\r\n',
    );
    expect(reply.answers.map((a) => a.status)).toEqual([200]);
    expect(reply.answers[0]!.headers['x-togather-slot']).toBe('blue');
    expect(reply.closed).toBe(true);
    const [request] = edge.blue.received('/tag');
    expect(values(request, 'x-togather-slot')).toEqual([]);
    expect(values(request, 'connection')).toEqual(['keep-alive']);
  });

  it('tokens naming the headers the proxy adds do not remove them', async () => {
    const request = await forward(
      '/owned',
      'Connection: X-Request-Id, X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, X-Forwarded-Port\r\n' +
        'X-Request-Id: client-id-1\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Host: forged.example\r\n',
    );
    expect(values(request, 'x-request-id')).toEqual(['client-id-1']);
    expect(values(request, 'x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(values(request, 'x-forwarded-proto')).toEqual(['http']);
    expect(values(request, 'x-forwarded-host')).toEqual(['edge.test']);
    expect(values(request, 'x-forwarded-port')).toEqual([String(edge.proxy.port)]);
  });

  it('tokens naming framing and routing headers do not remove them', async () => {
    const request = await forward(
      '/framing',
      'Connection: Host, Content-Length, Transfer-Encoding\r\n',
      'body!',
    );
    expect(values(request, 'host')).toEqual(['edge.test']);
    expect(values(request, 'content-length')).toEqual(['5']);
    expect(request.body.toString()).toBe('body!');
  });

  it('a token naming another header removes it, and only it', async () => {
    const request = await forward(
      '/named',
      'Connection: X-Hop-Secret\r\nX-Hop-Secret: hop\r\nX-Kept: end-to-end\r\n',
    );
    expect(values(request, 'x-hop-secret')).toEqual([]);
    expect(values(request, 'x-kept')).toEqual(['end-to-end']);
  });

  it('drops the hop-by-hop headers themselves', async () => {
    const request = await forward(
      '/hop',
      'Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-Checksum\r\n' +
        'Proxy-Authorization: Basic c2VjcmV0\r\nUpgrade: h2c\r\n',
    );
    for (const name of [
      'keep-alive',
      'proxy-connection',
      'te',
      'trailer',
      'proxy-authorization',
      'upgrade',
    ]) {
      expect(values(request, name), name).toEqual([]);
    }
    expect(edge.blue.rawText()).not.toContain('c2VjcmV0');
  });
});

describe('X-Togather-Slot from clients', () => {
  it.each([
    ['once', 'X-Togather-Slot: green\r\n'],
    ['twice', 'X-Togather-Slot: green\r\nX-Togather-Slot: blue\r\n'],
    ['in odd case', 'x-TOGATHER-slot: green\r\n'],
    ['empty', 'X-Togather-Slot:\r\n'],
  ])('never reaches the slot when sent %s', async (_name, lines) => {
    const request = await forward('/client-slot', lines);
    expect(values(request, 'x-togather-slot')).toEqual([]);
    expect(edge.blue.rawText().toLowerCase()).not.toContain('x-togather-slot');
  });

  it('never reaches the slot in a WebSocket handshake', async () => {
    const reply = await converse(
      edge.proxy.port,
      'GET /ws HTTP/1.1\r\nHost: edge.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
        'X-Togather-Slot: green\r\n\r\n',
    );
    // The recording slot answers 200, not 101: the proxy relays that refusal and closes.
    expect(reply.answers.map((a) => [a.status, a.headers['x-togather-slot']])).toEqual([
      [200, 'blue'],
    ]);
    const [handshake] = edge.blue.received('/ws');
    expect(values(handshake, 'x-togather-slot')).toEqual([]);
    expect(values(handshake, 'upgrade')).toEqual(['websocket']);
  });
});

describe('upgrades other than WebSocket', () => {
  it.each([
    [
      'h2c',
      'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n',
    ],
    ['an unknown protocol', 'Connection: Upgrade\r\nUpgrade: smuggle/1.0\r\n'],
  ])('400 unsupported_upgrade for %s, nothing forwarded', async (_name, lines) => {
    const reply = await converse(
      edge.proxy.port,
      `GET /upgrade HTTP/1.1\r\nHost: edge.test\r\n${lines}\r\n`,
    );
    expect(reply.answers).toHaveLength(1);
    expectProxyError(reply.answers[0], 400, 'unsupported_upgrade');
    expect(reply.closed).toBe(true);
    expect(edge.blue.traffic()).toEqual([]);
  });
});

describe('slot answers', () => {
  it('a slot cannot speak for the proxy or strip its headers through Connection', async () => {
    const reply = await converse(
      edge.proxy.port,
      'GET /hop-answer HTTP/1.1\r\nHost: edge.test\r\nX-Request-Id: client-id-2\r\nConnection: close\r\n\r\n',
    );
    expect(reply.answers).toHaveLength(1);
    const answer = reply.answers[0]!;
    expect(answer.status).toBe(200);
    expect(answer.headers['x-togather-slot']).toBe('blue');
    expect(answer.headers['x-request-id']).toBe('client-id-2');
    expect(answer.headers['x-slot-hop']).toBeUndefined();
    expect(answer.headers['proxy-authenticate']).toBeUndefined();
    expect(answer.headers['keep-alive']).toBeUndefined();
    expect(answer.headers['x-upstream-slot']).toBe('blue');
    expect(reply.received).not.toContain('green');
    expect(reply.received).not.toContain('chosen-by-the-slot');
  });

  it('generates a request id when the client sends none, the same on both sides', async () => {
    const reply = await converse(
      edge.proxy.port,
      'GET /rid HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n\r\n',
    );
    const id = reply.answers[0]!.headers['x-request-id'];
    expect(id).toMatch(UUID);
    expect(values(edge.blue.received('/rid')[0], 'x-request-id')).toEqual([id]);
  });

  it('replaces a client request id that is not sane', async () => {
    const reply = await converse(
      edge.proxy.port,
      `GET /rid-bad HTTP/1.1\r\nHost: edge.test\r\nX-Request-Id: ${'x'.repeat(200)}\r\nConnection: close\r\n\r\n`,
    );
    const id = reply.answers[0]!.headers['x-request-id'];
    expect(id).toMatch(UUID);
    expect(values(edge.blue.received('/rid-bad')[0], 'x-request-id')).toEqual([id]);
  });
});
