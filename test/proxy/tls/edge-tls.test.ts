import { X509Certificate } from 'node:crypto';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestEdge } from '../../support/edge.js';
import { H2Client, H2StreamError, h2Request } from '../../support/h2-client.js';
import { closedPort } from '../../../harness/ports.js';
import { httpsRequest } from '../../support/tls-clients.js';
import { startTlsProxy, type TlsProxy } from '../../support/tls-proxy.js';
import { startFakeSlots, type FakeSlot } from '../../support/fake-slot.js';
import { httpRequest } from '../../../harness/http-client.js';

type Echo = {
  slot: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string;
};

describe('togather proxy with TLS: HTTP/2 and HTTP/1.1 on the TLS listener, redirect and HSTS on the plain one', () => {
  let slots: { blue: FakeSlot; green: FakeSlot };
  let tls: TlsProxy;

  beforeAll(async () => {
    slots = await startFakeSlots();
    tls = await startTlsProxy(
      { blueUrl: slots.blue.url, greenUrl: slots.green.url },
      { UPSTREAM_TIMEOUT: '1s', HTTPS_REDIRECT_EXCEPT: '/health,/public/*' },
    );
  });
  afterAll(async () => {
    await tls?.stop();
    await Promise.all([slots?.blue.close(), slots?.green.close()]);
  });

  it('forwards HTTP/2 and HTTP/1.1 requests with the slot, request id, forwarded headers and HSTS', async () => {
    const h2 = await h2Request(tls.tlsUrl, tls.ca, '/echo?x=1', {
      headers: { 'x-request-id': 'h2-request-1', cookie: 'a=1' },
    });
    expect(h2.status).toBe(200);
    expect(h2.headers).toMatchObject({
      'x-togather-slot': 'blue',
      'x-request-id': 'h2-request-1',
      'strict-transport-security': 'max-age=31536000',
    });
    const seen = JSON.parse(h2.body) as Echo;
    expect(seen).toMatchObject({ slot: 'blue', method: 'GET', url: '/echo?x=1', body: '' });
    // :authority becomes Host (node:http2 names the server it connected to by its SNI name).
    expect(seen.headers).toMatchObject({
      host: `localhost:${tls.tlsPort}`,
      'x-request-id': 'h2-request-1',
      'x-forwarded-for': '127.0.0.1',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': `localhost:${tls.tlsPort}`,
      'x-forwarded-port': String(tls.tlsPort),
      cookie: 'a=1',
    });
    expect(Object.keys(seen.headers).filter((name) => name.startsWith(':'))).toEqual([]);
    expect(seen.headers['transfer-encoding']).toBeUndefined();

    const h1 = await httpsRequest(tls.tlsPort, tls.ca, '/echo', {
      headers: { 'x-request-id': 'h1-request-1' },
    });
    expect(h1).toMatchObject({ status: 200, alpn: 'http/1.1' });
    expect(h1.headers).toMatchObject({
      'x-togather-slot': 'blue',
      'x-request-id': 'h1-request-1',
      'strict-transport-security': 'max-age=31536000',
    });
    expect((JSON.parse(h1.body) as Echo).headers).toMatchObject({
      'x-forwarded-proto': 'https',
      'x-forwarded-port': String(tls.tlsPort),
    });
    // The proxy's own answers over TLS carry it too.
    const refused = await httpsRequest(tls.tlsPort, tls.ca, '/echo', { headers: { host: 'a b' } });
    expect(refused.status).toBe(400);
    expect(refused.headers).toMatchObject({
      'x-togather-slot': 'blue',
      'strict-transport-security': 'max-age=31536000',
    });
    expect(JSON.parse(refused.body)).toMatchObject({ error: 'invalid_host_header' });
  });

  it('sends HTTP/2 request bodies with their length, or chunked when the client gave none', async () => {
    const client = await H2Client.connect(tls.tlsUrl, tls.ca);
    try {
      const sized = await client.request('/echo', {
        method: 'POST',
        headers: { 'content-type': 'text/plain', 'content-length': '5' },
        body: 'hello',
      });
      expect(JSON.parse(sized.body)).toMatchObject({
        method: 'POST',
        body: 'hello',
        headers: { 'content-length': '5' },
      });
      // A DELETE streamed without a length: Node would otherwise send it unframed.
      const streamed = await client.request('/echo', {
        method: 'DELETE',
        bodyChunks: ['one ', 'two ', 'three'],
      });
      const seen = JSON.parse(streamed.body) as Echo;
      expect(seen).toMatchObject({ method: 'DELETE', body: 'one two three' });
      expect(seen.headers['transfer-encoding']).toBe('chunked');
      expect(seen.headers['content-length']).toBeUndefined();
      const head = await client.request('/echo', { method: 'HEAD' });
      expect(head).toMatchObject({ status: 200, body: '' });
      expect(head.headers['x-togather-slot']).toBe('blue');
    } finally {
      await client.close();
    }
  });

  it('redirects plain HTTP with 308 to https, keeping path and query; challenge paths and the exceptions are forwarded', async () => {
    const moved = await httpRequest(`${tls.publicUrl}/events?a=1&b=%20x`, {
      headers: { host: 'events.example.org:8080' },
    });
    expect(moved.status).toBe(308);
    expect(moved.headers).toMatchObject({
      location: `https://events.example.org:${tls.tlsPort}/events?a=1&b=%20x`,
      'x-togather-slot': 'blue',
      'content-length': '0',
    });
    expect(moved.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(moved.headers['strict-transport-security']).toBeUndefined();
    expect(moved.body).toBe('');

    const ipv6 = await httpRequest(`${tls.publicUrl}/`, { headers: { host: '[::1]:8080' } });
    expect(ipv6.headers.location).toBe(`https://[::1]:${tls.tlsPort}/`);
    const posted = await httpRequest(`${tls.publicUrl}/api/v1/events`, {
      method: 'POST',
      body: '{"name":"x"}',
    });
    expect(posted.status).toBe(308);

    for (const path of ['/health', '/public/logo.png', '/.well-known/acme-challenge/not-ours']) {
      const forwarded = await httpRequest(`${tls.publicUrl}${path}`);
      expect({
        path,
        status: forwarded.status,
        slot: forwarded.headers['x-togather-slot'],
      }).toEqual({ path, status: 200, slot: 'blue' });
    }
    // Only the exact path and what is below the prefix: /healthz and /public are redirected.
    expect((await httpRequest(`${tls.publicUrl}/healthz`)).status).toBe(308);
    expect((await httpRequest(`${tls.publicUrl}/public`)).status).toBe(308);
  });

  it('answers its own errors over HTTP/2 as JSON with the slot: 504 after UPSTREAM_TIMEOUT, 405 for CONNECT, a cut for a slot that breaks off', async () => {
    const client = await H2Client.connect(tls.tlsUrl, tls.ca);
    try {
      const timedOut = await client.request('/hang', { headers: { 'x-request-id': 'h2-timeout' } });
      expect(timedOut.status).toBe(504);
      expect(timedOut.headers).toMatchObject({
        'x-togather-slot': 'blue',
        'x-request-id': 'h2-timeout',
        'content-type': 'application/json; charset=utf-8',
        'cache-control': 'no-store',
        'strict-transport-security': 'max-age=31536000',
      });
      expect(JSON.parse(timedOut.body)).toEqual({
        error: 'upstream_timeout',
        slot: 'blue',
        request_id: 'h2-timeout',
      });

      const cut = await client.request('/reset-mid-body').catch((error: unknown) => error);
      expect(cut).toBeInstanceOf(H2StreamError);
      // The connection stays usable for the next stream.
      expect((await client.request('/status/201')).status).toBe(201);
    } finally {
      await client.close();
    }
    const connect = await new Promise<{ status: number; body: string; slot: unknown }>(
      (resolve, reject) => {
        void H2Client.connect(tls.tlsUrl, tls.ca).then((c) => {
          const stream = c.session.request({
            ':method': 'CONNECT',
            ':authority': 'example.org:443',
          });
          let status = 0;
          let slot: unknown;
          let body = '';
          stream.on('response', (h) => {
            status = Number(h[':status']);
            slot = h['x-togather-slot'];
          });
          stream.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
          stream.on('end', () => {
            c.destroy();
            resolve({ status, body, slot });
          });
          stream.on('error', reject);
        }, reject);
      },
    );
    expect(connect.status).toBe(405);
    expect(connect.slot).toBe('blue');
    expect(JSON.parse(connect.body)).toMatchObject({ error: 'method_not_allowed', slot: 'blue' });
  });

  it('counts and logs HTTP/2 requests like HTTP/1.1 ones', async () => {
    await h2Request(tls.tlsUrl, tls.ca, '/echo?secret=1', {
      headers: { 'x-request-id': 'h2-log-1' },
    });
    const line = await tls.logs.waitFor((l) => l.log === 'access' && l.request_id === 'h2-log-1');
    expect(line).toMatchObject({
      slot: 'blue',
      method: 'GET',
      path: '/echo',
      status: 200,
      remote_addr: '127.0.0.1',
    });
    expect(line.bytes).toBeGreaterThan(0);
    const metrics = (await tls.admin('/metrics')).text;
    expect(metrics).toMatch(
      /^togather_proxy_requests_total\{slot="blue",method="GET",code="200"\} \d+/m,
    );
    expect(metrics).toMatch(
      /^togather_proxy_requests_total\{slot="blue",method="GET",code="504"\} 1$/m,
    );
    expect(metrics).toMatch(/^togather_proxy_certificate_expiry_seconds\{domain="[^"]+"\} \d+/m);
    expect(metrics).toMatch(/^togather_proxy_acme_orders_total\{result="failure"\} 0$/m);
  });

  it('shows the certificate layer in /admin/status under tls', async () => {
    const status = (await tls.admin('/admin/status')).json as { tls: Record<string, unknown> };
    const served = new X509Certificate(tls.ca);
    expect(status.tls).toMatchObject({
      port: tls.tlsPort,
      https_redirect: true,
      hsts_max_age: 31_536_000,
      acme: null,
      certificates: [
        {
          source: 'file',
          serial: served.serialNumber.toUpperCase(),
          not_after: new Date(served.validTo).toISOString(),
        },
      ],
    });
  });

  it('drains HTTP/2 streams in flight on the old slot at a switch; the same connection then goes to the new one', async () => {
    const client = await H2Client.connect(tls.tlsUrl, tls.ca);
    try {
      const slow = client.request('/slow?ms=700');
      await expect.poll(() => tls.proxy.edge.traffic('blue').inflight).toBe(1);
      await tls.switchTo('green');
      const next = await client.request('/echo');
      expect(next.headers['x-togather-slot']).toBe('green');
      expect(tls.proxy.edge.traffic('blue')).toMatchObject({ inflight: 1, draining: true });
      const finished = await slow;
      expect(finished.status).toBe(200);
      expect(finished.headers['x-togather-slot']).toBe('blue');
      expect(JSON.parse(finished.body)).toEqual({ slot: 'blue', path: '/slow?ms=700' });
      await expect.poll(() => tls.proxy.edge.traffic('blue').draining).toBe(false);
    } finally {
      await client.close();
      await tls.switchTo('blue');
    }
  });

  it('keeps WebSockets working over TLS (HTTP/1.1 upgrade on the TLS listener)', async () => {
    const ws = new WebSocket(`wss://localhost:${tls.tlsPort}/ws`, { ca: tls.ca });
    let headers: Record<string, unknown> = {};
    ws.once('upgrade', (res) => (headers = res.headers));
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    expect(headers['x-togather-slot']).toBe('blue');
    const reply = new Promise<string>((resolve) =>
      ws.once('message', (data) => resolve(String(data))),
    );
    ws.send('over tls');
    expect(await reply).toBe('blue:over tls');
    ws.close();
  });
});

describe('togather proxy with TLS: switches and closing', () => {
  let slots: { blue: FakeSlot; green: FakeSlot };

  beforeAll(async () => {
    slots = await startFakeSlots();
  });
  afterAll(async () => {
    await Promise.all([slots?.blue.close(), slots?.green.close()]);
  });

  it('HSTS=off and HTTPS_REDIRECT=off: plain HTTP is forwarded, TLS answers carry no HSTS', async () => {
    const tls = await startTlsProxy(
      { blueUrl: slots.blue.url, greenUrl: slots.green.url },
      { HSTS: 'off', HTTPS_REDIRECT: 'off' },
    );
    try {
      const plain = await httpRequest(`${tls.publicUrl}/events`);
      expect(plain.status).toBe(200);
      expect(JSON.parse(plain.body)).toMatchObject({ slot: 'blue' });
      const h2 = await h2Request(tls.tlsUrl, tls.ca, '/events');
      expect(h2.status).toBe(200);
      expect(h2.headers['strict-transport-security']).toBeUndefined();
      expect(((await tls.admin('/admin/status')).json as { tls: unknown }).tls).toMatchObject({
        https_redirect: false,
        hsts_max_age: null,
      });
    } finally {
      await tls.stop();
    }
  });

  it('answers 502 JSON over HTTP/2 when the slot is unreachable', async () => {
    const dead = `http://127.0.0.1:${await closedPort()}`;
    const tls = await startTlsProxy({ blueUrl: dead, greenUrl: slots.green.url });
    try {
      const answer = await h2Request(tls.tlsUrl, tls.ca, '/events', {
        headers: { 'x-request-id': 'h2-unreachable' },
      });
      expect(answer.status).toBe(502);
      expect(answer.headers['x-togather-slot']).toBe('blue');
      expect(JSON.parse(answer.body)).toEqual({
        error: 'upstream_unreachable',
        slot: 'blue',
        request_id: 'h2-unreachable',
      });
      expect((await tls.admin('/metrics')).text).toMatch(
        /^togather_proxy_upstream_errors_total\{slot="blue",reason="refused"\} 1$/m,
      );
    } finally {
      await tls.stop();
    }
  });

  it('sends an idempotent HTTP/2 request again after a stale pooled slot connection, never a POST', async () => {
    // A slot that answers the first request of each connection and drops the connection at the second.
    let connections = 0;
    const stale = createTcpServer((socket) => {
      connections++;
      let requests = 0;
      socket.on('data', () => {
        requests++;
        if (requests === 1) {
          socket.write(
            'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok',
          );
        } else socket.destroy();
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => stale.listen(0, '127.0.0.1', () => resolve()));
    const port = (stale.address() as AddressInfo).port;
    const tls = await startTlsProxy({
      blueUrl: `http://127.0.0.1:${port}`,
      greenUrl: slots.green.url,
    });
    const client = await H2Client.connect(tls.tlsUrl, tls.ca);
    try {
      const before = connections;
      const first = await client.request('/a');
      const second = await client.request('/b');
      expect([first.status, second.status, second.body]).toEqual([200, 200, 'ok']);
      // The first request's connection, the reused one that failed, a fresh one for the retry.
      expect(connections - before).toBe(2);
      tls.proxy.edge.upstreams.blue.closeIdleSockets();
      const fresh = await client.request('/c', {
        method: 'POST',
        body: 'x',
        headers: { 'content-length': '1' },
      });
      expect(fresh.status).toBe(200);
      const post = await client.request('/d', {
        method: 'POST',
        body: 'y',
        headers: { 'content-length': '1', 'x-request-id': 'h2-post-stale' },
      });
      expect(post.status).toBe(502);
      expect(JSON.parse(post.body)).toEqual({
        error: 'upstream_reset',
        slot: 'blue',
        request_id: 'h2-post-stale',
      });
    } finally {
      client.destroy();
      await tls.stop();
      await new Promise<void>((resolve) => stale.close(() => resolve()));
    }
  });

  it('drains the TLS listener with the plain one on close: streams in flight finish, then nothing listens', async () => {
    const tls = await startTlsProxy({ blueUrl: slots.blue.url, greenUrl: slots.green.url });
    const client = await H2Client.connect(tls.tlsUrl, tls.ca);
    const slow = client.request('/slow?ms=500');
    await expect.poll(() => tls.proxy.edge.traffic('blue').inflight).toBe(1);
    const stopping = tls.stop();
    const answer = await slow;
    expect(answer.status).toBe(200);
    expect(answer.headers['x-togather-slot']).toBe('blue');
    await stopping;
    expect(client.goaways.length).toBeGreaterThan(0);
    client.destroy();
    await expect(H2Client.connect(tls.tlsUrl, tls.ca)).rejects.toThrow(/ECONNREFUSED/);
  });

  it('does not start when the certificate files cannot be read, naming the variables', async () => {
    const starting = startTestEdge({
      blueUrl: slots.blue.url,
      greenUrl: slots.green.url,
      env: {
        PROXY_TLS_PORT: '0',
        TLS_CERT_FILE: '/nonexistent/edge.crt',
        TLS_KEY_FILE: '/nonexistent/edge.key',
      },
    });
    await expect(starting).rejects.toThrow(/^TLS_CERT_FILE\/TLS_KEY_FILE: /);
  });

  it('has no TLS listener without a certificate source', async () => {
    const edge = await startTestEdge({
      blueUrl: slots.blue.url,
      greenUrl: slots.green.url,
      healthPollIntervalMs: 60_000,
    });
    try {
      expect(edge.proxy.tlsUrl).toBeUndefined();
      const status = await edge.admin('GET', '/admin/status');
      expect((status.body as { tls: unknown }).tls).toBeNull();
      // No redirect without TLS.
      expect((await httpRequest(`${edge.url}/events`)).status).toBe(200);
    } finally {
      await edge.stop(1000);
    }
  });
});
