import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bodyOf, H2Client, H2StreamError, h2Request } from '../../support/h2-client.js';
import { startTlsProxy, type TlsProxy } from '../../support/tls-proxy.js';
import { startFakeSlots, type FakeSlot } from '../../support/fake-slot.js';

/**
 * The edge policy on HTTP/2 streams as on HTTP/1.1: security headers added
 * where the slot set none and the slot's Server dropped, on slot answers and
 * the proxy's own; ALLOWED_HOSTS answering 421 (WebSockets over HTTP/2 too); MAX_BODY_SIZE answering 413
 * for a declared length and cutting a streamed body that grows past it.
 */
describe('the edge policy on HTTP/2', () => {
  let slots: { blue: FakeSlot; green: FakeSlot };
  let tls: TlsProxy;

  beforeAll(async () => {
    slots = await startFakeSlots();
    tls = await startTlsProxy(
      { blueUrl: slots.blue.url, greenUrl: slots.green.url },
      {
        ALLOWED_HOSTS: 'localhost',
        MAX_BODY_SIZE: '1kb',
        CONTENT_SECURITY_POLICY: "default-src 'self'",
      },
    );
  });
  afterAll(async () => {
    await tls?.stop();
    await Promise.all([slots?.blue.close(), slots?.green.close()]);
  });

  it('adds the security headers the slot did not set and drops its Server', async () => {
    const answer = await h2Request(
      tls.tlsUrl,
      tls.ca,
      '/answer?bytes=10&h-server=slot%2F1.0&h-x-frame-options=DENY',
    );
    expect(answer.status).toBe(200);
    expect(answer.headers.server).toBeUndefined();
    expect(answer.headers).toMatchObject({
      'x-frame-options': 'DENY',
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'strict-origin-when-cross-origin',
      'content-security-policy': "default-src 'self'",
      'x-togather-slot': 'blue',
    });
    expect(answer.headers['permissions-policy']).toContain('camera=()');
  });

  it('answers a stream for another host 421 with the JSON body and the security headers', async () => {
    const answer = await h2Request(tls.tlsUrl, tls.ca, '/echo', {
      headers: { ':authority': `203.0.113.7:${tls.tlsPort}` },
    });
    expect(answer.status).toBe(421);
    const body = JSON.parse(answer.body) as Record<string, string>;
    expect(body).toEqual({
      error: 'misdirected_request',
      slot: 'blue',
      request_id: answer.headers['x-request-id'],
    });
    expect(answer.headers['x-content-type-options']).toBe('nosniff');
  });

  it('answers a WebSocket over HTTP/2 for another host 421 before the slot sees it', async () => {
    const client = await H2Client.connect(tls.tlsUrl, tls.ca);
    try {
      const answer = await client.webSocket('/live', {
        ':authority': `203.0.113.7:${tls.tlsPort}`,
        'x-request-id': 'h2-ws-421',
      });
      expect(answer.status).toBe(421);
      expect(JSON.parse(await bodyOf(answer.stream))).toEqual({
        error: 'misdirected_request',
        slot: 'blue',
        request_id: 'h2-ws-421',
      });
      expect(slots.blue.websockets.size).toBe(0);
    } finally {
      client.destroy();
    }
  });

  it('answers a declared body over MAX_BODY_SIZE 413 before the slot sees it', async () => {
    const before = slots.blue.requests.length;
    const answer = await h2Request(tls.tlsUrl, tls.ca, '/echo', {
      method: 'POST',
      headers: { 'content-length': '2048', 'content-type': 'text/plain' },
      body: 'x'.repeat(2048),
    }).catch((error: unknown) => error);
    // The proxy may answer before the client has sent the whole body, then reset the stream.
    if (answer instanceof H2StreamError) throw answer;
    const refused = answer as { status: number; body: string };
    expect(refused.status).toBe(413);
    expect(JSON.parse(refused.body)).toMatchObject({ error: 'payload_too_large', slot: 'blue' });
    expect(slots.blue.requests.length).toBe(before);
  });

  it('cuts a streamed body that grows past MAX_BODY_SIZE and answers 413', async () => {
    const before = slots.blue.requests.length;
    const answer = await h2Request(tls.tlsUrl, tls.ca, '/echo', {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      bodyChunks: ['a'.repeat(600), 'b'.repeat(600), 'c'.repeat(600)],
    }).catch((error: unknown) => error);
    if (answer instanceof H2StreamError) throw answer;
    expect((answer as { status: number }).status).toBe(413);
    expect(JSON.parse((answer as { body: string }).body)).toMatchObject({
      error: 'payload_too_large',
    });
    // The slot's request was dropped before its body ended: it never answered or recorded it.
    expect(slots.blue.requests.length).toBe(before);
  });

  it('cuts the stream when the slot answered before the body grew past the limit', async () => {
    const answer = await h2Request(tls.tlsUrl, tls.ca, '/upload', {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      bodyChunks: ['a'.repeat(600), 'b'.repeat(600), 'c'.repeat(600)],
    }).catch((error: unknown) => error);
    // The head (200) went out first: only cutting the stream is left, so the
    // client sees a reset stream or, at most, the part echoed before the cut.
    if (!(answer instanceof H2StreamError)) {
      const partial = answer as { status: number; body: string };
      expect(partial.status).toBe(200);
      expect(partial.body.length).toBeLessThan(1200);
    }
  });

  it('forwards a body within the limit', async () => {
    const answer = await h2Request(tls.tlsUrl, tls.ca, '/echo', {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'small body',
    });
    expect(answer.status).toBe(200);
    expect((JSON.parse(answer.body) as { body: string }).body).toBe('small body');
  });
});
