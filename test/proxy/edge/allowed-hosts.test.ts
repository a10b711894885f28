import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostName } from '../../../proxy/edge/allowed-hosts.js';
import { twoSlotsAndEdge, type SlotsAndEdge } from '../../support/edge.js';
import { httpRequest } from '../../../harness/http-client.js';
import { rawHttp } from '../../support/raw-client.js';

/** ALLOWED_HOSTS: requests for other authorities get 421 and never reach a slot. */

function withHost(t: SlotsAndEdge, host: string, path = '/echo/host', requestId = 'h-1') {
  return httpRequest(`${t.url}${path}`, { headers: { host, 'x-request-id': requestId } });
}

it('reads a Host header value as a host name', () => {
  expect(hostName('Events.Example.ORG:8080')).toBe('events.example.org');
  expect(hostName('events.example.org.')).toBe('events.example.org');
  expect(hostName('[::1]:8080')).toBe('[::1]');
  expect(hostName('127.0.0.1')).toBe('127.0.0.1');
});

describe('ALLOWED_HOSTS set', () => {
  let t: SlotsAndEdge;

  beforeAll(async () => {
    t = await twoSlotsAndEdge({
      env: { ALLOWED_HOSTS: 'events.example.org, www.example.org', ACCESS_LOG: 'off' },
    });
  });

  afterAll(() => t?.close());

  it.each(['events.example.org', 'WWW.Example.Org', 'events.example.org:8080', 'www.example.org.'])(
    'forwards a request for %s',
    async (host) => {
      const answer = await withHost(t, host);
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.body).headers.host).toBe(host);
    },
  );

  it.each(['127.0.0.1', 'other.example.org', 'events.example.org.evil.test', 'example.org'])(
    'answers 421 misdirected_request to a request for %s, which the slot never sees',
    async (host) => {
      const before = t.blue.requests.length;
      const answer = await withHost(t, host, '/echo/scan', 'scan-1');
      expect(answer.status).toBe(421);
      expect(answer.headers['x-togather-slot']).toBe('blue');
      expect(answer.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(answer.headers['x-frame-options']).toBe('SAMEORIGIN');
      expect(answer.body).toBe(
        '{"error":"misdirected_request","slot":"blue","request_id":"scan-1"}',
      );
      expect(t.blue.requests.length).toBe(before);
    },
  );

  it('checks the authority of an absolute-form target, and a request without Host', async () => {
    const absolute = await rawHttp(
      t.port,
      'GET http://scan.example/echo HTTP/1.1\r\nHost: events.example.org\r\nX-Request-Id: abs-1\r\nConnection: close\r\n\r\n',
    );
    expect(absolute.status).toBe(421);
    expect(JSON.parse(absolute.body)).toEqual({
      error: 'misdirected_request',
      slot: 'blue',
      request_id: 'abs-1',
    });
    const noHost = await rawHttp(t.port, 'GET /echo HTTP/1.0\r\nX-Request-Id: old-1\r\n\r\n');
    expect(noHost.status).toBe(421);
  });

  it('lets ACME HTTP-01 challenges through for any host', async () => {
    const answer = await withHost(t, '203.0.113.5', '/.well-known/acme-challenge/token-1');
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body).path).toBe('/.well-known/acme-challenge/token-1');
  });

  it('refuses a WebSocket handshake for another host with 421', async () => {
    const answer = await rawHttp(
      t.port,
      'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Request-Id: ws-421\r\n\r\n',
    );
    expect(answer.status).toBe(421);
    expect(answer.body).toBe('{"error":"misdirected_request","slot":"blue","request_id":"ws-421"}');
    expect(answer.headers['x-content-type-options']).toBe('nosniff');
  });

  it('counts 421 answers in the request metric', async () => {
    expect(await t.metrics()).toMatch(
      /togather_proxy_requests_total\{slot="blue",method="GET",code="421"\} [1-9]/,
    );
  });
});

describe('ALLOWED_HOSTS unset', () => {
  let t: SlotsAndEdge;

  beforeAll(async () => {
    t = await twoSlotsAndEdge({ env: { ACCESS_LOG: 'off' } });
  });

  afterAll(() => t?.close());

  it('forwards a request for any host', async () => {
    for (const host of ['127.0.0.1', 'anything.example']) {
      expect((await withHost(t, host)).status).toBe(200);
    }
  });
});
