import { Agent, request, type IncomingMessage } from 'node:http';
import { connect, createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  startTestEdge,
  twoSlotsAndEdge,
  type SlotsAndEdge,
  type TestEdge,
} from '../../support/edge.js';
import { closedPort } from '../../../harness/ports.js';
import { FakeSlot } from '../../support/fake-slot.js';
import { until } from '../../support/wait.js';
import { httpRequest } from '../../../harness/http-client.js';
import { rawHttp } from '../../support/raw-client.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('edge proxy forwarding', () => {
  let t: SlotsAndEdge;

  beforeAll(async () => {
    t = await twoSlotsAndEdge({ env: { MAX_HEADER_SIZE: '8192' } });
  });

  afterAll(() => t?.close());

  describe('methods and bodies', () => {
    it.each(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])(
      'forwards %s to the active slot and tags the answer',
      async (method) => {
        const body = method === 'GET' ? undefined : `payload of ${method}`;
        const answer = await httpRequest(`${t.url}/echo/${method.toLowerCase()}?q=1`, {
          method,
          body,
          headers: body ? { 'content-type': 'text/plain' } : {},
        });
        expect(answer.status).toBe(200);
        expect(answer.headers['x-togather-slot']).toBe('blue');
        const echoed = JSON.parse(answer.body) as { method: string; url: string; body: string };
        expect(echoed.method).toBe(method);
        expect(echoed.url).toBe(`/echo/${method.toLowerCase()}?q=1`);
        expect(echoed.body).toBe(body ?? '');
      },
    );

    it('forwards HEAD without a body', async () => {
      const answer = await httpRequest(`${t.url}/echo`, { method: 'HEAD' });
      expect(answer.status).toBe(200);
      expect(answer.headers['x-togather-slot']).toBe('blue');
      expect(answer.body).toBe('');
    });

    it('passes the request target as received (no normalisation)', async () => {
      const target = '/echo/a/%2e%2e/b//c?x=%20y&z';
      const answer = await rawHttp(
        t.port,
        `GET ${target} HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n\r\n`,
      );
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.body).url).toBe(target);
    });

    it('turns an absolute-form target into a path and takes the host from it', async () => {
      const answer = await rawHttp(
        t.port,
        'GET http://app.example:8443/echo/abs?x=1 HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n',
      );
      expect(answer.status).toBe(200);
      const echoed = JSON.parse(answer.body) as { url: string; headers: Record<string, string> };
      expect(echoed.url).toBe('/echo/abs?x=1');
      expect(echoed.headers.host).toBe('app.example:8443');
    });

    it('streams the request and the answer both ways at once', async () => {
      // The slot pipes the body back as it arrives: the echo of the first part
      // must come back before the second part is even sent.
      const received: string[] = [];
      const done = new Promise<{ res: IncomingMessage; body: string }>((resolve, reject) => {
        const req = request(`${t.url}/upload`, {
          method: 'POST',
          agent: false,
          headers: { 'transfer-encoding': 'chunked', 'content-type': 'application/octet-stream' },
        });
        req.on('error', reject);
        req.on('response', (res) => {
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            received.push(chunk);
            if (received.join('') === 'first part;') req.end('second part');
          });
          res.on('end', () => resolve({ res, body: received.join('') }));
        });
        req.flushHeaders();
        req.write('first part;');
      });
      const { res, body } = await done;
      expect(res.statusCode).toBe(200);
      expect(res.headers['x-togather-slot']).toBe('blue');
      expect(body).toBe('first part;second part');
    });

    it('streams a chunked answer', async () => {
      const answer = await httpRequest(`${t.url}/stream?chunks=4&interval=20`);
      expect(answer.status).toBe(200);
      expect(answer.body).toBe('chunk 0\nchunk 1\nchunk 2\nchunk 3\n');
    });

    it.each(['DELETE', 'OPTIONS'])(
      'delivers a chunked %s body intact and keeps the slot connection usable',
      async (method) => {
        const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = request(`${t.url}/echo/chunked`, {
            method,
            agent: false,
            headers: { 'transfer-encoding': 'chunked' },
          });
          req.on('error', reject);
          req.on('response', (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => (body += chunk));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          });
          req.write('abc');
          req.end('def');
        });
        expect(answer.status).toBe(200);
        expect(JSON.parse(answer.body)).toMatchObject({ method, body: 'abcdef' });
        // Nothing of the body was left on a pooled connection to be read as a request.
        const next = await httpRequest(`${t.url}/echo/after`);
        expect(JSON.parse(next.body)).toMatchObject({ method: 'GET', url: '/echo/after' });
      },
    );
  });

  describe('request headers', () => {
    it('generates an X-Request-Id, sends it upstream and returns it', async () => {
      const answer = await httpRequest(`${t.url}/echo/id`);
      const id = answer.headers['x-request-id'];
      expect(id).toMatch(UUID);
      expect(JSON.parse(answer.body).headers['x-request-id']).toBe(id);
    });

    it('passes a sane X-Request-Id through', async () => {
      const answer = await httpRequest(`${t.url}/echo/id`, {
        headers: { 'x-request-id': 'abc-123_x.y:z' },
      });
      expect(answer.headers['x-request-id']).toBe('abc-123_x.y:z');
      expect(JSON.parse(answer.body).headers['x-request-id']).toBe('abc-123_x.y:z');
    });

    it.each([
      ['with spaces', 'has spaces in it'],
      ['too long', 'a'.repeat(129)],
      ['with quotes', '"quoted"'],
    ])('replaces an X-Request-Id %s', async (_name, id) => {
      const answer = await httpRequest(`${t.url}/echo/id`, { headers: { 'x-request-id': id } });
      expect(answer.headers['x-request-id']).toMatch(UUID);
      expect(JSON.parse(answer.body).headers['x-request-id']).toBe(answer.headers['x-request-id']);
    });

    it('replaces an incoming X-Forwarded-* chain when TRUST_PROXY is off', async () => {
      const answer = await httpRequest(`${t.url}/echo/fwd`, {
        headers: {
          host: 'shop.example',
          'x-forwarded-for': '203.0.113.9',
          'x-forwarded-proto': 'https',
          'x-forwarded-host': 'evil.example',
          'x-forwarded-port': '443',
        },
      });
      const headers = JSON.parse(answer.body).headers as Record<string, string>;
      expect(headers['x-forwarded-for']).toBe('127.0.0.1');
      expect(headers['x-forwarded-proto']).toBe('http');
      expect(headers['x-forwarded-host']).toBe('shop.example');
      expect(headers['x-forwarded-port']).toBe(String(t.port));
      expect(headers.host).toBe('shop.example');
    });

    it('strips hop-by-hop headers and those named in Connection, never the ones it adds', async () => {
      const answer = await rawHttp(
        t.port,
        [
          'GET /echo/hop HTTP/1.1',
          'Host: edge.test',
          'Connection: close, X-Hop-A, X-Request-Id, X-Forwarded-For, Host, Content-Length',
          'X-Hop-A: secret',
          'Keep-Alive: timeout=5',
          'TE: trailers',
          'Trailer: x-checksum',
          'Upgrade: something',
          'Proxy-Authorization: Basic dXNlcjpwYXNz',
          'Proxy-Connection: keep-alive',
          'X-Togather-Slot: green',
          'X-Togather-Slot: blue',
          'X-Request-Id: client-id-1',
          'X-Kept: yes',
          '',
          '',
        ].join('\r\n'),
      );
      expect(answer.status).toBe(200);
      expect(answer.headers['x-togather-slot']).toBe('blue');
      const headers = JSON.parse(answer.body).headers as Record<string, string>;
      // The proxy's own connection to the slot is a pooled keep-alive one.
      expect(headers.connection).toBe('keep-alive');
      for (const gone of [
        'x-hop-a',
        'keep-alive',
        'te',
        'trailer',
        'upgrade',
        'proxy-authorization',
        'proxy-connection',
        'x-togather-slot',
      ]) {
        expect(headers[gone], gone).toBeUndefined();
      }
      expect(headers['x-request-id']).toBe('client-id-1');
      expect(headers['x-forwarded-for']).toBe('127.0.0.1');
      expect(headers.host).toBe('edge.test');
      expect(headers['x-kept']).toBe('yes');
    });

    it('answers Expect: 100-continue itself and does not pass Expect on', async () => {
      const answer = await new Promise<{ status: number; body: string; continued: boolean }>(
        (resolve, reject) => {
          let continued = false;
          const req = request(`${t.url}/echo/expect`, {
            method: 'POST',
            agent: false,
            headers: { expect: '100-continue', 'content-length': '5' },
          });
          req.on('error', reject);
          req.on('continue', () => {
            continued = true;
            req.end('hello');
          });
          req.on('response', (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => (body += chunk));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body, continued }));
          });
        },
      );
      expect(answer.continued).toBe(true);
      expect(answer.status).toBe(200);
      const echoed = JSON.parse(answer.body) as { body: string; headers: Record<string, string> };
      expect(echoed.body).toBe('hello');
      expect(echoed.headers.expect).toBeUndefined();
    });
  });

  describe('answer headers', () => {
    it('drops hop-by-hop headers of the slot and keeps its own X-Togather-Slot and X-Request-Id', async () => {
      const agent = new Agent({ keepAlive: true });
      const answer = await httpRequest(`${t.url}/hop-headers`, {
        headers: { 'x-request-id': 'mine-1' },
        agent,
      });
      agent.destroy();
      expect(answer.status).toBe(200);
      expect(answer.headers['x-togather-slot']).toBe('blue');
      expect(answer.headers['x-request-id']).toBe('mine-1');
      expect(answer.headers['x-upstream-hop']).toBeUndefined();
      expect(answer.headers['proxy-authenticate']).toBeUndefined();
      expect(answer.headers.upgrade).toBeUndefined();
      // The client connection's own keep-alive, not the slot's.
      expect(answer.headers.connection).toBe('keep-alive');
      expect(answer.headers['keep-alive']).toBe('timeout=75');
      expect(answer.headers['x-kept']).toBe('yes');
    });

    it.each([200, 201, 204, 301, 404, 409, 500, 503])(
      'tags a %i answer of the slot with X-Togather-Slot',
      async (status) => {
        const answer = await httpRequest(`${t.url}/status/${status}`);
        expect(answer.status).toBe(status);
        expect(answer.headers['x-togather-slot']).toBe('blue');
        expect(answer.headers['x-request-id']).toMatch(UUID);
      },
    );

    it('keeps the client connection open when the slot answers Connection: close', async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const first = await httpRequest(`${t.url}/close-connection`, { agent });
        expect(first.status).toBe(200);
        expect(first.headers.connection).toBe('keep-alive');
        const second = await httpRequest(`${t.url}/echo/next`, { agent });
        expect(second.status).toBe(200);
        expect(second.reusedSocket).toBe(true);
        expect(second.localPort).toBe(first.localPort);
      } finally {
        agent.destroy();
      }
    });
  });

  describe('proxy errors', () => {
    it('answers 502 upstream_reset when the slot drops the connection', async () => {
      const answer = await httpRequest(`${t.url}/reset`, { headers: { 'x-request-id': 'r-502' } });
      expect(answer.status).toBe(502);
      expect(answer.headers['x-togather-slot']).toBe('blue');
      expect(answer.headers['x-request-id']).toBe('r-502');
      expect(answer.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(JSON.parse(answer.body)).toEqual({
        error: 'upstream_reset',
        slot: 'blue',
        request_id: 'r-502',
      });
    });

    it('cuts the client answer when the slot breaks off mid-body', async () => {
      const outcome = await new Promise<string>((resolve) => {
        const req = request(`${t.url}/reset-mid-body`, { agent: false });
        req.on('error', (error) => resolve(`request error: ${error.message}`));
        req.on('response', (res) => {
          expect(res.headers['x-togather-slot']).toBe('blue');
          res.on('error', () => resolve('aborted'));
          res.on('end', () => resolve(res.complete ? 'complete' : 'aborted'));
          res.resume();
        });
        req.end();
      });
      expect(outcome).toBe('aborted');
    });

    it('answers 431 with the slot header when the request headers are too large', async () => {
      const answer = await rawHttp(
        t.port,
        `GET /echo HTTP/1.1\r\nHost: edge.test\r\nX-Big: ${'b'.repeat(10_000)}\r\n\r\n`,
      );
      expect(answer.status).toBe(431);
      expect(answer.headers['x-togather-slot']).toBe('blue');
      expect(answer.headers.connection).toBe('close');
      const body = JSON.parse(answer.body) as { request_id: string };
      expect(body).toEqual({
        error: 'request_header_fields_too_large',
        slot: 'blue',
        request_id: body.request_id,
      });
      expect(body.request_id).toMatch(UUID);
    });

    it('answers 400 bad_request to a request Node cannot parse', async () => {
      const answer = await rawHttp(t.port, 'GARBAGE\r\n\r\n');
      expect(answer.status).toBe(400);
      expect(answer.headers['x-togather-slot']).toBe('blue');
      expect(JSON.parse(answer.body)).toMatchObject({ error: 'bad_request', slot: 'blue' });
    });

    it('answers 400 missing_host_header to HTTP/1.1 without Host', async () => {
      const answer = await rawHttp(
        t.port,
        'GET /echo HTTP/1.1\r\nX-Request-Id: no-host\r\nConnection: close\r\n\r\n',
      );
      expect(answer.status).toBe(400);
      expect(answer.headers['x-togather-slot']).toBe('blue');
      expect(JSON.parse(answer.body)).toEqual({
        error: 'missing_host_header',
        slot: 'blue',
        request_id: 'no-host',
      });
    });

    it('answers 400 bad_request_target to an asterisk target', async () => {
      const answer = await rawHttp(
        t.port,
        'OPTIONS * HTTP/1.1\r\nHost: edge.test\r\nX-Request-Id: star\r\nConnection: close\r\n\r\n',
      );
      expect(answer.status).toBe(400);
      expect(JSON.parse(answer.body)).toEqual({
        error: 'bad_request_target',
        slot: 'blue',
        request_id: 'star',
      });
    });

    it('answers 405 to CONNECT (not a forward proxy)', async () => {
      const answer = await rawHttp(
        t.port,
        'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nX-Request-Id: tunnel\r\n\r\n',
      );
      expect(answer.status).toBe(405);
      expect(JSON.parse(answer.body)).toEqual({
        error: 'method_not_allowed',
        slot: 'blue',
        request_id: 'tunnel',
      });
    });

    it('answers 417 to an Expect other than 100-continue', async () => {
      const answer = await rawHttp(
        t.port,
        'GET /echo HTTP/1.1\r\nHost: edge.test\r\nExpect: teapot\r\nX-Request-Id: exp\r\nConnection: close\r\n\r\n',
      );
      expect(answer.status).toBe(417);
      expect(JSON.parse(answer.body)).toEqual({
        error: 'expectation_failed',
        slot: 'blue',
        request_id: 'exp',
      });
    });
  });

  it('aborts the upstream request when the client goes away', async () => {
    const abortedBefore = t.blue.aborted;
    const controller = new AbortController();
    const pending = httpRequest(`${t.url}/slow?ms=30000`, { signal: controller.signal });
    pending.catch(() => undefined);
    await until(() => t.blue.requests.some((r) => r.target === '/slow?ms=30000'));
    controller.abort();
    await expect(pending).rejects.toThrow();
    await until(() => t.blue.aborted > abortedBefore);
    await until(() => t.edge.upstreams.blue.inflight === 0);
  });

  it('writes one access-log line per request, without the query string', async () => {
    await httpRequest(`${t.url}/echo/logged?token=secret`, {
      headers: { 'x-request-id': 'log-me-1' },
    });
    const line = await t.logs.waitFor((l) => l.request_id === 'log-me-1' && l.msg === 'request');
    expect(line).toMatchObject({
      log: 'access',
      slot: 'blue',
      method: 'GET',
      path: '/echo/logged',
      status: 200,
      remote_addr: '127.0.0.1',
    });
    expect(typeof line.duration_ms).toBe('number');
    expect(line.bytes).toBeGreaterThan(100);
    expect(JSON.stringify(t.logs.lines)).not.toContain('token=secret');
  });
});

describe('edge proxy forwarding with TRUST_PROXY on', () => {
  let t: SlotsAndEdge;

  beforeAll(async () => {
    t = await twoSlotsAndEdge({ env: { TRUST_PROXY: 'on', ACCESS_LOG: 'off' } });
  });

  afterAll(() => t?.close());

  it('appends to an incoming X-Forwarded-For and keeps the rest of the chain', async () => {
    const answer = await httpRequest(`${t.url}/echo/fwd`, {
      headers: {
        host: 'internal:8000',
        'x-forwarded-for': '203.0.113.9, 10.0.0.1',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'shop.example',
        'x-forwarded-port': '443',
      },
    });
    const headers = JSON.parse(answer.body).headers as Record<string, string>;
    expect(headers['x-forwarded-for']).toBe('203.0.113.9, 10.0.0.1, 127.0.0.1');
    expect(headers['x-forwarded-proto']).toBe('https');
    expect(headers['x-forwarded-host']).toBe('shop.example');
    expect(headers['x-forwarded-port']).toBe('443');
  });

  it('starts the chain when there is none', async () => {
    const answer = await httpRequest(`${t.url}/echo/fwd`, { headers: { host: 'shop.example' } });
    const headers = JSON.parse(answer.body).headers as Record<string, string>;
    expect(headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(headers['x-forwarded-proto']).toBe('http');
    expect(headers['x-forwarded-host']).toBe('shop.example');
    expect(headers['x-forwarded-port']).toBe(String(t.port));
  });

  it('writes no access log when ACCESS_LOG is off', async () => {
    await httpRequest(`${t.url}/echo/quiet`, { headers: { 'x-request-id': 'quiet-1' } });
    await new Promise((r) => setTimeout(r, 100));
    expect(t.logs.find((l) => l.msg === 'request')).toBeUndefined();
  });
});

describe('edge proxy upstream failures', () => {
  let t: SlotsAndEdge;

  beforeAll(async () => {
    const nothingListens = `http://127.0.0.1:${await closedPort()}`;
    t = await twoSlotsAndEdge({
      urls: { green: nothingListens },
      env: { UPSTREAM_TIMEOUT: '500ms' },
    });
  });

  afterAll(() => t?.close());

  it('answers 504 upstream_timeout when the slot says nothing within UPSTREAM_TIMEOUT', async () => {
    const abortedBefore = t.blue.aborted;
    const answer = await httpRequest(`${t.url}/hang`, { headers: { 'x-request-id': 'slow-1' } });
    expect(answer.status).toBe(504);
    expect(answer.headers['x-togather-slot']).toBe('blue');
    expect(JSON.parse(answer.body)).toEqual({
      error: 'upstream_timeout',
      slot: 'blue',
      request_id: 'slow-1',
    });
    await until(() => t.blue.aborted > abortedBefore);
  });

  it('answers 502 upstream_unreachable when the slot refuses connections', async () => {
    await t.switchTo('green');
    try {
      const answer = await httpRequest(`${t.url}/echo`, { headers: { 'x-request-id': 'down-1' } });
      expect(answer.status).toBe(502);
      expect(answer.headers['x-togather-slot']).toBe('green');
      expect(JSON.parse(answer.body)).toEqual({
        error: 'upstream_unreachable',
        slot: 'green',
        request_id: 'down-1',
      });
      const metrics = await t.metrics();
      expect(metrics).toMatch(
        /togather_proxy_upstream_errors_total\{slot="green",reason="refused"\} [1-9]/,
      );
      expect(metrics).toMatch(
        /togather_proxy_requests_total\{slot="green",method="GET",code="502"\} [1-9]/,
      );
      const warning = await t.logs.waitFor(
        (l) => l.msg === 'upstream request failed' && l.slot === 'green',
      );
      expect(warning).toMatchObject({ slot: 'green', reason: 'refused', status: 502 });
    } finally {
      await t.switchTo('blue');
    }
  });
});

describe('edge proxy and stale pooled connections', () => {
  /** A slot that answers the first request of each connection and drops the connection at the second. */
  let slot: TcpServer;
  let connections = 0;
  let t: TestEdge;
  let green: FakeSlot;

  beforeAll(async () => {
    slot = createTcpServer((socket) => {
      connections++;
      let requests = 0;
      socket.on('data', () => {
        requests++;
        if (requests === 1) {
          socket.write(
            'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok',
          );
        } else {
          socket.destroy();
        }
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => slot.listen(0, '127.0.0.1', () => resolve()));
    const address = slot.address() as { port: number };
    green = await FakeSlot.start('green');
    t = await startTestEdge({
      blueUrl: `http://127.0.0.1:${address.port}`,
      greenUrl: green.url,
    });
  });

  afterAll(async () => {
    await t?.stop();
    await green?.close();
    await new Promise<void>((resolve) => slot.close(() => resolve()));
  });

  it('sends an idempotent request again on a fresh connection', async () => {
    const before = connections;
    const first = await httpRequest(`${t.url}/a`);
    const second = await httpRequest(`${t.url}/b`);
    expect([first.status, second.status]).toEqual([200, 200]);
    expect(second.body).toBe('ok');
    // One connection for the first request, the reused one that failed, a fresh one for the retry.
    expect(connections - before).toBe(2);
  });

  it('does not send a POST again', async () => {
    t.edge.upstreams.blue.closeIdleSockets();
    const first = await httpRequest(`${t.url}/a`, { method: 'POST', body: 'x' });
    expect(first.status).toBe(200);
    const second = await httpRequest(`${t.url}/b`, {
      method: 'POST',
      body: 'y',
      headers: { 'x-request-id': 'post-2' },
    });
    expect(second.status).toBe(502);
    expect(JSON.parse(second.body)).toEqual({
      error: 'upstream_reset',
      slot: 'blue',
      request_id: 'post-2',
    });
  });
});

describe('edge proxy with a slot URL that has a path', () => {
  let t: SlotsAndEdge;

  beforeAll(async () => {
    t = await twoSlotsAndEdge({ urls: { blue: (blue) => `${blue.url}/echo/prefix` } });
  });

  afterAll(() => t?.close());

  it('puts the path in front of the request target', async () => {
    const answer = await httpRequest(`${t.url}/items?page=2`);
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body).url).toBe('/echo/prefix/items?page=2');
  });
});

describe('edge proxy client-side limits', () => {
  let t: SlotsAndEdge;

  beforeAll(async () => {
    t = await twoSlotsAndEdge({ env: { HEADERS_TIMEOUT: '400ms', REQUEST_TIMEOUT: '800ms' } });
  });

  afterAll(() => t?.close());

  it('answers 408 with the slot header when the headers do not arrive in time', async () => {
    const answer = await rawHttp(t.port, 'GET /echo HTTP/1.1\r\nHost: edge.test\r\n');
    expect(answer.status).toBe(408);
    expect(answer.headers['x-togather-slot']).toBe('blue');
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'request_timeout', slot: 'blue' });
  });

  it('keeps an HTTP/1.0 keep-alive client alive and closes a plain HTTP/1.0 one', async () => {
    const socket = connect(t.port, '127.0.0.1');
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('GET /echo/one HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    await until(() => Buffer.concat(received).includes('"url":"/echo/one"'));
    const first = Buffer.concat(received).toString();
    expect(first).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(first).toMatch(/\r\nConnection: keep-alive\r\n/i);
    socket.write('GET /echo/two HTTP/1.0\r\n\r\n');
    await new Promise((resolve) => socket.once('close', resolve));
    const both = Buffer.concat(received).toString();
    expect(both).toContain('"url":"/echo/two"');
    expect(both.slice(first.length)).toMatch(/\r\nConnection: close\r\n/i);
  });
});

describe('edge proxy connection limit', () => {
  let t: SlotsAndEdge;

  beforeAll(async () => {
    t = await twoSlotsAndEdge({ env: { MAX_CONNECTIONS: '3' } });
  });

  afterAll(() => t?.close());

  it('refuses connections beyond MAX_CONNECTIONS and counts them', async () => {
    const held = await Promise.all(
      [1, 2, 3].map(
        () =>
          new Promise<ReturnType<typeof connect>>((resolve) => {
            const s = connect(t.port, '127.0.0.1', () => resolve(s));
          }),
      ),
    );
    try {
      await expect(httpRequest(`${t.url}/echo/fourth`)).rejects.toThrow(
        /socket hang up|ECONNRESET/,
      );
      expect(await t.metrics()).toMatch(/togather_proxy_dropped_connections_total 1\n/);
    } finally {
      for (const s of held) s.destroy();
    }
  });
});
