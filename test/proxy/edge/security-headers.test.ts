import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SECURITY_HEADERS } from '../../../proxy/edge/security-headers.js';
import { twoSlotsAndEdge, type SlotsAndEdge } from '../../support/edge.js';
import { closedPort } from '../../../harness/ports.js';
import { httpRequest } from '../../../harness/http-client.js';
import { rawHttp } from '../../support/raw-client.js';

/** SECURITY_HEADERS and CONTENT_SECURITY_POLICY on slot answers and the proxy's own. */

const PERMISSIONS =
  'accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()';
const DEFAULTS = {
  'x-frame-options': 'SAMEORIGIN',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'strict-origin-when-cross-origin',
  'permissions-policy': PERMISSIONS,
};
const CSP = "default-src 'self'; img-src 'self' data:";

/** What green is told to be: a slot nothing listens on, so the proxy answers 502 itself. */
let nothingListens: string;

beforeAll(async () => {
  nothingListens = `http://127.0.0.1:${await closedPort()}`;
});

/** The headers of every kind of answer: a slot's, the proxy's 502, a raw 400, a relayed handshake refusal. */
async function answers(t: SlotsAndEdge) {
  const slot = await httpRequest(`${t.url}/answer?bytes=10&h-server=app/1.2.3`);
  await t.switchTo('green');
  let gateway;
  try {
    gateway = await httpRequest(`${t.url}/echo`, { headers: { 'x-request-id': 'gw-1' } });
  } finally {
    await t.switchTo('blue');
  }
  const parseError = await rawHttp(t.port, 'GARBAGE\r\n\r\n');
  const handshake = await rawHttp(
    t.port,
    'GET /ws-refused HTTP/1.1\r\nHost: edge.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  return { slot, gateway, parseError, handshake };
}

describe('SECURITY_HEADERS on (the default)', () => {
  let t: SlotsAndEdge;

  beforeAll(async () => {
    t = await twoSlotsAndEdge({ urls: { green: nothingListens }, env: { ACCESS_LOG: 'off' } });
  });

  afterAll(() => t?.close());

  it('adds the set to every answer, removes the slot Server, adds no CSP', async () => {
    expect(
      Object.fromEntries(DEFAULT_SECURITY_HEADERS.map(([n, v]) => [n.toLowerCase(), v])),
    ).toEqual(DEFAULTS);
    const { slot, gateway, parseError, handshake } = await answers(t);
    expect(slot.status).toBe(200);
    expect(slot.headers).toMatchObject(DEFAULTS);
    expect(slot.headers.server).toBeUndefined();
    expect(slot.headers['content-security-policy']).toBeUndefined();
    expect(gateway.status).toBe(502);
    expect(JSON.parse(gateway.body)).toEqual({
      error: 'upstream_unreachable',
      slot: 'green',
      request_id: 'gw-1',
    });
    expect(gateway.headers).toMatchObject(DEFAULTS);
    expect(parseError.status).toBe(400);
    expect(parseError.headers).toMatchObject(DEFAULTS);
    expect(handshake.status).toBe(401);
    expect(handshake.headers).toMatchObject(DEFAULTS);
  });

  it('keeps the values the slot set, once each', async () => {
    const answer = await httpRequest(
      `${t.url}/answer?bytes=10&h-x-frame-options=DENY&h-referrer-policy=no-referrer&h-content-security-policy=default-src%20none`,
    );
    expect(answer.headers['x-frame-options']).toBe('DENY');
    expect(answer.headers['referrer-policy']).toBe('no-referrer');
    expect(answer.headers['content-security-policy']).toBe('default-src none');
    expect(answer.headers['x-content-type-options']).toBe('nosniff');
    const raw = await rawHttp(
      t.port,
      'GET /answer?bytes=10&h-x-frame-options=DENY HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n\r\n',
    );
    expect(raw.headers['x-frame-options']).toBe('DENY');
    expect(raw.body).toBe('{"name":"O');
  });
});

describe('CONTENT_SECURITY_POLICY set', () => {
  let t: SlotsAndEdge;

  beforeAll(async () => {
    t = await twoSlotsAndEdge({
      urls: { green: nothingListens },
      env: { ACCESS_LOG: 'off', CONTENT_SECURITY_POLICY: CSP },
    });
  });

  afterAll(() => t?.close());

  it('adds the policy where the slot set none, to the proxy answers too', async () => {
    const { slot, gateway, parseError } = await answers(t);
    for (const answer of [slot, gateway, parseError]) {
      expect(answer.headers['content-security-policy']).toBe(CSP);
      expect(answer.headers['x-frame-options']).toBe('SAMEORIGIN');
    }
    const own = await httpRequest(`${t.url}/answer?bytes=10&h-content-security-policy=sandbox`);
    expect(own.headers['content-security-policy']).toBe('sandbox');
  });
});

describe('SECURITY_HEADERS off', () => {
  let t: SlotsAndEdge;

  beforeAll(async () => {
    t = await twoSlotsAndEdge({
      urls: { green: nothingListens },
      env: { ACCESS_LOG: 'off', SECURITY_HEADERS: 'off' },
    });
  });

  afterAll(() => t?.close());

  it('adds nothing and keeps the slot Server', async () => {
    const { slot, gateway, parseError, handshake } = await answers(t);
    expect(slot.headers.server).toBe('app/1.2.3');
    for (const answer of [slot, gateway, parseError, handshake]) {
      for (const name of Object.keys(DEFAULTS)) expect(answer.headers[name], name).toBeUndefined();
      expect(answer.headers['content-security-policy']).toBeUndefined();
    }
  });
});

describe('SECURITY_HEADERS off with CONTENT_SECURITY_POLICY', () => {
  let t: SlotsAndEdge;

  beforeAll(async () => {
    t = await twoSlotsAndEdge({
      urls: { green: nothingListens },
      env: { ACCESS_LOG: 'off', SECURITY_HEADERS: 'off', CONTENT_SECURITY_POLICY: CSP },
    });
  });

  afterAll(() => t?.close());

  it('adds only the policy that was asked for', async () => {
    const answer = await httpRequest(`${t.url}/answer?bytes=10&h-server=app/1.2.3`);
    expect(answer.headers['content-security-policy']).toBe(CSP);
    expect(answer.headers['x-frame-options']).toBeUndefined();
    expect(answer.headers.server).toBe('app/1.2.3');
  });
});
