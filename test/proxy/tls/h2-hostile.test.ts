import { constants } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { H2Client, H2StreamError } from '../../support/h2-client.js';
import { RawH2Client } from '../../support/h2-frames.js';
import { startTlsProxy, type TlsProxy } from '../../support/tls-proxy.js';
import { headerOf, startFakeSlots, type FakeSlot } from '../../support/fake-slot.js';

const PROTOCOL_ERROR = constants.NGHTTP2_PROTOCOL_ERROR;
const ENHANCE_YOUR_CALM = constants.NGHTTP2_ENHANCE_YOUR_CALM;

/** HTTP/2 hostile inputs on the TLS listener: refused before anything reaches a slot. */
describe('HTTP/2 hostile inputs', () => {
  let slots: { blue: FakeSlot; green: FakeSlot };
  let tls: TlsProxy;

  beforeAll(async () => {
    slots = await startFakeSlots();
    tls = await startTlsProxy({ blueUrl: slots.blue.url, greenUrl: slots.green.url });
  });
  afterAll(async () => {
    await tls?.stop();
    await Promise.all([slots?.blue.close(), slots?.green.close()]);
  });

  /** Paths the slot received (the recorded ones of this test carry a marker). */
  const reached = (marker: string) =>
    slots.blue.requests.filter((r) => r.target.includes(marker)).map((r) => r.target);

  it('refuses connection-specific header fields with RST_STREAM PROTOCOL_ERROR, and passes TE: trailers without forwarding it', async () => {
    const raw = await RawH2Client.connect(tls.tlsPort, tls.ca);
    try {
      const hostile: Array<[string, string]> = [
        ['connection', 'keep-alive'],
        ['transfer-encoding', 'chunked'],
        ['keep-alive', 'timeout=5'],
        ['proxy-connection', 'keep-alive'],
        ['upgrade', 'websocket'],
        ['te', 'gzip'],
      ];
      let id = 1;
      const outcomes: Record<string, unknown> = {};
      for (const field of hostile) {
        raw.get(id, `/echo?conn-${field[0]}`, [field]);
        outcomes[field[0]] = await raw.outcome(id);
        id += 2;
      }
      expect(outcomes).toEqual(
        Object.fromEntries(
          hostile.map(([name]) => [name, { rst: PROTOCOL_ERROR, answered: false }]),
        ),
      );
      raw.get(id, '/echo?conn-te-trailers', [['te', 'trailers']]);
      expect(await raw.outcome(id)).toEqual({ answered: true });
      // The connection survived the refusals; only the allowed request reached the slot.
      expect(raw.goaways()).toEqual([]);
    } finally {
      raw.destroy();
    }
    await expect.poll(() => reached('conn-')).toEqual(['/echo?conn-te-trailers']);
    const forwarded = slots.blue.requests.find((r) => r.target === '/echo?conn-te-trailers')!;
    expect(headerOf(forwarded, 'te')).toBeUndefined();
  });

  it('refuses invalid pseudo-headers with RST_STREAM PROTOCOL_ERROR', async () => {
    const raw = await RawH2Client.connect(tls.tlsPort, tls.ca);
    const base = (path: string): Array<[string, string]> => [
      [':method', 'GET'],
      [':scheme', 'https'],
      [':authority', 'localhost'],
      [':path', path],
    ];
    const cases: Record<string, Array<[string, string]>> = {
      unknown: [...base('/echo?pseudo-unknown'), [':foo', 'bar']],
      missingPath: base('/x').slice(0, 3),
      afterRegular: [['x-a', '1'], ...base('/echo?pseudo-after')],
      duplicatePath: [...base('/echo?pseudo-dup'), [':path', '/other']],
      responseOnly: [...base('/echo?pseudo-status'), [':status', '200']],
      upperCaseName: [...base('/echo?pseudo-upper'), ['X-Upper', '1']],
      emptyPath: base(''),
    };
    try {
      let id = 1;
      const outcomes: Record<string, unknown> = {};
      for (const [name, fields] of Object.entries(cases)) {
        raw.headers(id, fields);
        outcomes[name] = await raw.outcome(id);
        id += 2;
      }
      expect(outcomes).toEqual(
        Object.fromEntries(
          Object.keys(cases).map((name) => [name, { rst: PROTOCOL_ERROR, answered: false }]),
        ),
      );
    } finally {
      raw.destroy();
    }
    expect(reached('pseudo-')).toEqual([]);
  });

  it('answers a header list over MAX_HEADER_SIZE with 431 JSON, refuses too many fields (ENHANCE_YOUR_CALM), and the connection serves on', async () => {
    const client = await H2Client.connect(tls.tlsUrl, tls.ca);
    try {
      const big = await client.request('/echo?big-header', {
        headers: { 'x-big': 'a'.repeat(20_000), 'x-request-id': 'h2-big' },
      });
      expect(big.status).toBe(431);
      expect(big.headers['x-togather-slot']).toBe('blue');
      expect(JSON.parse(big.body)).toEqual({
        error: 'request_header_fields_too_large',
        slot: 'blue',
        request_id: 'h2-big',
      });
      const many: Record<string, string> = {};
      for (let i = 0; i < 300; i++) many[`x-field-${i}`] = 'v';
      const crowded = await client
        .request('/echo?many-headers', { headers: many })
        .catch((error: unknown) => error);
      expect(crowded).toBeInstanceOf(H2StreamError);
      expect((crowded as H2StreamError).rstCode).toBe(ENHANCE_YOUR_CALM);
      expect((await client.request('/echo?after-big')).status).toBe(200);
    } finally {
      await client.close();
    }
    expect(reached('big-header')).toEqual([]);
    expect(reached('many-headers')).toEqual([]);
  });

  it('answers a rapid-reset flood (HEADERS then RST_STREAM, again and again) with GOAWAY ENHANCE_YOUR_CALM after a bounded number of streams', async () => {
    const before = slots.blue.requests.length;
    const client = await H2Client.connect(tls.tlsUrl, tls.ca);
    let sent = 0;
    try {
      for (let i = 0; i < 2000; i++) {
        if (client.session.destroyed || client.session.closed || client.goaways.length > 0) break;
        const stream = client.session.request({ ':path': '/slow?ms=2000&flood=1' });
        stream.on('error', () => undefined);
        stream.close(constants.NGHTTP2_CANCEL);
        sent++;
        // Let the frames go out and the server's answers come in now and then.
        if (i % 25 === 24) await new Promise((resolve) => setTimeout(resolve, 1));
      }
      await expect
        .poll(() => client.goaways[0]?.errorCode, { timeout: 10_000 })
        .toBe(ENHANCE_YOUR_CALM);
    } finally {
      client.destroy();
    }
    // 100 abandoned streams at once are allowed (StreamResetGuard); the flood stopped well before 2000.
    expect(sent).toBeGreaterThan(100);
    expect(sent).toBeLessThan(2000);
    const warned = tls.logs.find((l) => String(l.msg).includes('rapid reset'));
    expect(warned).toBeDefined();
    // What reached the slot is bounded too, and the proxy serves the next client as before.
    expect(slots.blue.requests.length - before).toBeLessThanOrEqual(sent);
    const next = await H2Client.connect(tls.tlsUrl, tls.ca);
    try {
      expect((await next.request('/echo?after-flood')).status).toBe(200);
    } finally {
      await next.close();
    }
    await expect.poll(() => tls.proxy.edge.traffic('blue').inflight).toBe(0);
  });
});
