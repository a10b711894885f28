import { urlJoin } from 'http-proxy-3/dist/lib/http-proxy/common.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prefixedPath, upstreamPath } from '../../../proxy/edge/stream-pass.js';
import { converse } from '../../support/raw-client.js';
import { FakeSlot, type RecordedRequest } from '../../support/fake-slot.js';
import { ProxyProcess } from '../../../harness/proxy-process.js';

/**
 * The data plane's own web pass (stream-pass.ts) forwards every request, to
 * a slot URL with or without a path prefix. Both proxies here send to one
 * recording slot (its own strict HTTP/1.1 reader), one of them through a
 * prefix: every request must reach it byte for byte the same, apart from the
 * prefix and the proxies' own ports. The joining of prefix and target is
 * checked against http-proxy-3's own urlJoin, which its `stream` pass uses.
 */

const PREFIX = '/prefix';

let slot: FakeSlot;
let lean: ProxyProcess;
let stream: ProxyProcess;

beforeAll(async () => {
  slot = await FakeSlot.start('blue', { wire: 'raw' });
  const env = { ACCESS_LOG: 'off', LOG_LEVEL: 'warn' };
  [lean, stream] = await Promise.all([
    ProxyProcess.start({ blueUrl: slot.url, greenUrl: slot.url, env }),
    ProxyProcess.start({ blueUrl: `${slot.url}${PREFIX}`, greenUrl: slot.url, env }),
  ]);
});

afterAll(async () => {
  await Promise.all([lean?.stop(), stream?.stop()]);
  await slot?.close();
});

/**
 * What the slot saw, without what differs by design between the two proxies:
 * the order of the header lines and the case of their names (undici, which
 * carries the lean pass's requests, writes Host and Connection first and in
 * lower case; Node writes them where and how http.request puts them). Lines
 * of one name keep their order.
 */
function comparable(request: RecordedRequest, proxy: ProxyProcess, prefix: string) {
  expect(request.target.startsWith(prefix)).toBe(true);
  const headers = request.headers
    .map(([name, value]) => [name.toLowerCase(), value] as const)
    .filter(([name]) => name !== 'x-forwarded-port')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return {
    method: request.method,
    target: request.target.slice(prefix.length),
    version: request.version,
    headers,
    forwardedPort: request.headers.find(([name]) => name.toLowerCase() === 'x-forwarded-port')?.[1],
    body: request.body.toString('latin1'),
    proxyPort: String(proxy.port),
  };
}

/**
 * Sends the same bytes through both proxies (with an X-Request-Id, so that
 * neither generates one); returns what the slot saw, the same from both.
 */
async function throughBoth(request: string) {
  const lineEnd = request.indexOf('\r\n') + 2;
  const bytes = /x-request-id/i.test(request)
    ? request
    : `${request.slice(0, lineEnd)}X-Request-Id: same-for-both\r\n${request.slice(lineEnd)}`;
  const seen = [];
  for (const [proxy, prefix] of [
    [lean, ''],
    [stream, PREFIX],
  ] as const) {
    slot.reset();
    const conversation = await converse(proxy.port, bytes, { quietMs: 50 });
    expect(conversation.answers.map((a) => a.status)).toEqual([200]);
    const [request] = slot.traffic();
    expect(request).toBeDefined();
    const view = comparable(request!, proxy, prefix);
    expect(view.forwardedPort).toBe(view.proxyPort);
    seen.push({ ...view, forwardedPort: undefined, proxyPort: undefined });
  }
  expect(seen[0]).toEqual(seen[1]);
  return seen[0]!;
}

describe('the data plane pass forwards as http-proxy-3 stream does', () => {
  it('a GET with repeated, mixed-case and hop-by-hop headers', async () => {
    const seen = await throughBoth(
      'GET /events?from=2026-01-01&tag=a HTTP/1.1\r\n' +
        'Host: edge.test\r\n' +
        'X-Request-Id: pass-test-1\r\n' +
        'Accept: application/json\r\n' +
        'accept: text/plain\r\n' +
        'Cookie: a=1\r\n' +
        'Cookie: b=2\r\n' +
        'Connection: keep-alive, X-Drop\r\n' +
        'X-Drop: gone\r\n' +
        'X-Keep: Stays As Is\r\n' +
        '\r\n',
    );
    expect(seen.method).toBe('GET');
    expect(seen.target).toBe('/events?from=2026-01-01&tag=a');
    expect(seen.headers).toEqual([
      ['accept', 'application/json, text/plain'],
      ['connection', 'keep-alive'],
      ['cookie', 'a=1; b=2'],
      ['host', 'edge.test'],
      ['x-forwarded-for', '127.0.0.1'],
      ['x-forwarded-host', 'edge.test'],
      ['x-forwarded-proto', 'http'],
      ['x-keep', 'Stays As Is'],
      ['x-real-ip', '127.0.0.1'],
      ['x-request-id', 'pass-test-1'],
    ]);
  });

  it('an HTTP/1.0 request without Host gets the Host Node gives it', async () => {
    const seen = await throughBoth('GET /old HTTP/1.0\r\nX-Request-Id: pass-test-2\r\n\r\n');
    expect(seen.headers).toContainEqual(['host', `127.0.0.1:${slot.port}`]);
  });

  it('an empty query loses its question mark; other targets pass as received', async () => {
    expect((await throughBoth('GET /search? HTTP/1.1\r\nHost: a\r\n\r\n')).target).toBe('/search');
    expect((await throughBoth('GET //twice//over HTTP/1.1\r\nHost: a\r\n\r\n')).target).toBe(
      '//twice//over',
    );
    expect((await throughBoth('GET /q??x=%20 HTTP/1.1\r\nHost: a\r\n\r\n')).target).toBe(
      '/q??x=%20',
    );
  });

  it('bodies: Content-Length, chunked, and a DELETE with Content-Length 0', async () => {
    const sized = await throughBoth(
      'POST /events HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"a":"b c"}',
    );
    expect(sized.body).toBe('{"a":"b c"}');
    expect(sized.headers).toContainEqual(['content-length', '11']);

    const chunked = await throughBoth(
      'PUT /events/1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n',
    );
    expect(chunked.body).toBe('hello world');
    expect(chunked.headers).toContainEqual(['transfer-encoding', 'chunked']);

    const empty = await throughBoth(
      'DELETE /events/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n',
    );
    expect(empty.body).toBe('');
    expect(empty.headers).toContainEqual(['content-length', '0']);

    // http-proxy-3's deleteLength pass would send `Content-Length: 0` and then the body bytes.
    for (const method of ['DELETE', 'OPTIONS']) {
      const framed = await throughBoth(
        `${method} /events/1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
      );
      expect(framed.body).toBe('abc');
      expect(framed.headers).toContainEqual(['transfer-encoding', 'chunked']);
      expect(framed.headers.some(([name]) => name.toLowerCase() === 'content-length')).toBe(false);
    }
    expect(slot.unreadable).toEqual([]);
  });
});

describe('prefixedPath joins as http-proxy-3 urlJoin does', () => {
  it.each([
    ['/prefix', '', '/'],
    ['/prefix', '', '/events?from=1'],
    ['/prefix/', '', '/events'],
    ['/prefix/', '', '//twice//over'],
    ['/prefix', '', '/search?'],
    ['/prefix', '', '/q??x=%20'],
    ['/prefix', 'token=1', '/events?page=2'],
    ['/prefix', 'token=1', '/events'],
    ['/', 'token=1', '/events?page=2'],
    ['/', 'token=1', '/'],
    ['/a/b', '', '/c/d?e=f&g'],
  ])('%s?%s + %s', (path, query, url) => {
    const target = query === '' ? path : `${path}?${query}`;
    expect(prefixedPath({ path, query }, url)).toBe(urlJoin(target, url));
  });
});

describe('upstreamPath', () => {
  it.each([
    ['/', '/'],
    ['/?', '/'],
    ['/a?', '/a'],
    ['/a?b', '/a?b'],
    ['/a??', '/a??'],
    ['/a?b?', '/a?b?'],
    ['//x', '//x'],
  ])('%s -> %s', (url, expected) => {
    expect(upstreamPath(url)).toBe(expected);
  });
});
