import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { twoSlotsAndEdge, type SlotsAndEdge } from '../../support/edge.js';
import { httpRequest } from '../../../harness/http-client.js';
import { rawHttp } from '../../support/raw-client.js';

/** X-Real-IP: the client socket's address, whatever the client sent. */

describe.each([
  ['off', '127.0.0.1'],
  ['on', '203.0.113.9, 127.0.0.1'],
])('X-Real-IP with TRUST_PROXY=%s', (trustProxy, forwardedFor) => {
  let t: SlotsAndEdge;

  beforeAll(async () => {
    t = await twoSlotsAndEdge({ env: { TRUST_PROXY: trustProxy, ACCESS_LOG: 'off' } });
  });

  afterAll(() => t?.close());

  it('sends the socket address and replaces a client value', async () => {
    const plain = await httpRequest(`${t.url}/echo/ip`);
    expect(JSON.parse(plain.body).headers['x-real-ip']).toBe('127.0.0.1');
    const forged = await httpRequest(`${t.url}/echo/ip`, {
      headers: { 'x-real-ip': '198.51.100.7', 'x-forwarded-for': '203.0.113.9' },
    });
    const headers = JSON.parse(forged.body).headers as Record<string, string>;
    expect(headers['x-real-ip']).toBe('127.0.0.1');
    expect(headers['x-forwarded-for']).toBe(forwardedFor);
  });

  it('sends one value when the client sent several, and a Connection token cannot remove it', async () => {
    const answer = await rawHttp(
      t.port,
      'GET /echo/ip HTTP/1.1\r\nHost: edge.test\r\nConnection: close, X-Real-IP\r\n' +
        'X-Real-IP: 198.51.100.7\r\nX-Real-IP: 198.51.100.8\r\n\r\n',
    );
    expect(JSON.parse(answer.body).headers['x-real-ip']).toBe('127.0.0.1');
  });
});
