import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestCertificates, type TestCertificates } from '../../support/tls.js';
import { FakeSlot } from '../../support/fake-slot.js';
import { nextMessage, openWebSocket, refusedWebSocket } from '../../support/websocket-client.js';
import { httpRequest, type HttpRequestOptions } from '../../../harness/http-client.js';
import { ProxyProcess } from '../../../harness/proxy-process.js';

/**
 * Slots behind https URLs, with `togather proxy` as a child process: requests,
 * WebSockets, the health gate and /admin/status all trust the slots'
 * certificates through UPSTREAM_CA_FILE, certificate checks stay on without
 * it, and no https slot can take the proxy down.
 */

/** A GET (or other method) through the proxy with the body parsed as JSON when it is JSON. */
async function get(
  url: string,
  options: HttpRequestOptions = {},
): Promise<{ status: number; slot: unknown; body: unknown }> {
  const answer = await httpRequest(url, options);
  let body: unknown = answer.body;
  try {
    body = JSON.parse(answer.body);
  } catch {
    // not JSON: the text as is
  }
  return { status: answer.status, slot: answer.headers['x-togather-slot'], body };
}

describe('https slot URLs', () => {
  let certs: TestCertificates;
  let secureBlue: FakeSlot;
  let secureGreen: FakeSlot;
  let plainBlue: FakeSlot;
  let plainGreen: FakeSlot;
  let otherNameBlue: FakeSlot;
  const running = new Set<ProxyProcess>();

  /** Runs `check` against a `togather proxy` process with these slots, then stops it. */
  async function withProxy(
    urls: { blue: string; green: string },
    env: Record<string, string>,
    check: (proxy: ProxyProcess) => Promise<void>,
  ): Promise<void> {
    const proxy = await ProxyProcess.start({
      blueUrl: urls.blue,
      greenUrl: urls.green,
      env: { ACCESS_LOG: 'off', LOG_LEVEL: 'info', ...env },
    });
    running.add(proxy);
    try {
      await check(proxy);
    } finally {
      running.delete(proxy);
      await proxy.stop();
    }
  }

  beforeAll(async () => {
    certs = await createTestCertificates();
    const tls = { cert: certs.cert, key: certs.key };
    [secureBlue, secureGreen, plainBlue, plainGreen, otherNameBlue] = await Promise.all([
      FakeSlot.start('blue', { tls }),
      FakeSlot.start('green', { tls }),
      FakeSlot.start('blue'),
      FakeSlot.start('green'),
      FakeSlot.start('blue', { tls: certs.otherName }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([...running].map((proxy) => proxy.stop()));
    await Promise.all(
      [secureBlue, secureGreen, plainBlue, plainGreen, otherNameBlue].map((u) => u?.close()),
    );
    await certs?.remove();
  });

  it('forwards requests and WebSockets to an https slot trusted through UPSTREAM_CA_FILE', async () => {
    await withProxy(
      { blue: secureBlue.url, green: plainGreen.url },
      { UPSTREAM_CA_FILE: certs.caFile },
      async (proxy) => {
        const accepted = secureBlue.connectionsAccepted;
        const answer = await get(`${proxy.url}/echo?x=1`);
        expect(answer.status).toBe(200);
        expect(answer.slot).toBe('blue');
        expect(answer.body).toMatchObject({ slot: 'blue', method: 'GET', url: '/echo?x=1' });

        // The certificate is checked against the slot's name, not the client's Host.
        const named = await get(`${proxy.url}/echo`, { headers: { host: 'events.example.test' } });
        expect(named.status).toBe(200);
        expect(named.body).toMatchObject({ headers: { host: 'events.example.test' } });

        const posted = await get(`${proxy.url}/echo`, { method: 'POST', body: 'over tls' });
        expect(posted.status).toBe(200);
        expect(posted.body).toMatchObject({ slot: 'blue', method: 'POST', body: 'over tls' });

        // One keep-alive pool per slot: sequential requests reuse its TLS
        // connection (without it, 22 connections). The health poll, every 5 s,
        // opens one of its own per probe.
        for (let i = 0; i < 20; i++) expect((await get(`${proxy.url}/`)).status).toBe(200);
        expect(secureBlue.connectionsAccepted - accepted).toBeLessThanOrEqual(3);

        const { ws, headers } = await openWebSocket(`${proxy.url.replace('http', 'ws')}/chat`);
        try {
          expect(headers['x-togather-slot']).toBe('blue');
          const reply = nextMessage(ws);
          ws.send('hello');
          expect(String(await reply)).toBe('blue:hello');
        } finally {
          ws.close();
        }

        const status = await proxy.status();
        expect(status.slots).toMatchObject({
          blue: { url: secureBlue.url, healthy: true, tls: { ca_file: certs.caFile } },
          green: { url: plainGreen.url, healthy: true, tls: null },
        });
        expect(proxy.alive).toBe(true);
      },
    );
  });

  it('an https slot that does not answer within UPSTREAM_TIMEOUT: 504, then the pool serves on', async () => {
    await withProxy(
      { blue: secureBlue.url, green: plainGreen.url },
      { UPSTREAM_CA_FILE: certs.caFile, UPSTREAM_TIMEOUT: '500ms' },
      async (proxy) => {
        const hung = await get(`${proxy.url}/hang`, { headers: { 'x-request-id': 'hang-1' } });
        expect(hung.status).toBe(504);
        expect(hung.body).toEqual({
          error: 'upstream_timeout',
          slot: 'blue',
          request_id: 'hang-1',
        });
        expect((await get(`${proxy.url}/`)).body).toEqual({ slot: 'blue', path: '/' });
      },
    );
  });

  it('without UPSTREAM_CA_FILE the slot certificate is refused: 502 upstream_certificate, and the proxy keeps running', async () => {
    await withProxy({ blue: secureBlue.url, green: plainGreen.url }, {}, async (proxy) => {
      const answer = await get(`${proxy.url}/echo`, { headers: { 'x-request-id': 'cert-1' } });
      expect(answer.status).toBe(502);
      expect(answer.slot).toBe('blue');
      expect(answer.body).toEqual({
        error: 'upstream_certificate',
        slot: 'blue',
        request_id: 'cert-1',
      });

      const refused = await refusedWebSocket(`${proxy.url.replace('http', 'ws')}/chat`);
      expect(refused.status).toBe(502);
      expect(refused.headers['x-togather-slot']).toBe('blue');
      expect(JSON.parse(refused.body)).toMatchObject({
        error: 'upstream_certificate',
        slot: 'blue',
      });

      expect(
        await proxy.metric(
          'togather_proxy_upstream_errors_total',
          'slot="blue",reason="certificate"',
        ),
      ).toBe(2);
      const status = await proxy.status();
      expect(status.slots).toMatchObject({
        blue: {
          healthy: false,
          tls: { ca_file: null },
          // Node may add a hint of its own after the message.
          health_error: expect.stringMatching(
            /^GET https:\/\/127\.0\.0\.1:\d+\/health failed: UNABLE_TO_VERIFY_LEAF_SIGNATURE: unable to verify the first certificate/,
          ),
        },
      });
      expect((await get(`${proxy.url}/echo`)).status).toBe(502);
      expect(proxy.alive).toBe(true);
    });
  });

  it('a trusted certificate for another name: 502 upstream_certificate', async () => {
    await withProxy(
      { blue: otherNameBlue.url, green: plainGreen.url },
      { UPSTREAM_CA_FILE: certs.caFile },
      async (proxy) => {
        const answer = await get(`${proxy.url}/`, { headers: { 'x-request-id': 'name-1' } });
        expect(answer.status).toBe(502);
        expect(answer.body).toEqual({
          error: 'upstream_certificate',
          slot: 'blue',
          request_id: 'name-1',
        });
        // A client naming the certificate's host does not make the slot's certificate right.
        const named = await get(`${proxy.url}/`, { headers: { host: 'other.example' } });
        expect(named.status).toBe(502);
        const status = await proxy.status();
        expect(status.slots).toMatchObject({
          blue: {
            healthy: false,
            health_error: expect.stringContaining('ERR_TLS_CERT_ALTNAME_INVALID'),
          },
        });
        expect(proxy.alive).toBe(true);
      },
    );
  });

  it('an https URL to a slot that speaks plain http: 502 upstream_tls, and the proxy keeps running', async () => {
    await withProxy(
      {
        blue: plainBlue.url.replace('http:', 'https:'),
        green: plainGreen.url,
      },
      {},
      async (proxy) => {
        const answer = await get(`${proxy.url}/`, { headers: { 'x-request-id': 'tls-1' } });
        expect(answer.status).toBe(502);
        expect(answer.body).toEqual({ error: 'upstream_tls', slot: 'blue', request_id: 'tls-1' });
        expect(
          await proxy.metric('togather_proxy_upstream_errors_total', 'slot="blue",reason="tls"'),
        ).toBe(1);
        expect(proxy.alive).toBe(true);
      },
    );
  });

  it('a switch to an https slot passes the gate with the same trust, then requests succeed', async () => {
    await withProxy(
      { blue: plainBlue.url, green: secureGreen.url },
      { UPSTREAM_CA_FILE: certs.caFile },
      async (proxy) => {
        const switched = await proxy.switchTo('green');
        expect(switched.status).toBe(200);
        expect(switched.json).toMatchObject({ active: 'green', previous: 'blue', changed: true });
        for (let i = 0; i < 5; i++) {
          const answer = await get(`${proxy.url}/`);
          expect(answer.status).toBe(200);
          expect(answer.slot).toBe('green');
          expect(answer.body).toEqual({ slot: 'green', path: '/' });
        }
        expect(proxy.alive).toBe(true);
      },
    );
  });

  it('with PROXY_WORKERS=2 every worker trusts the slot through UPSTREAM_CA_FILE', async () => {
    await withProxy(
      { blue: secureBlue.url, green: plainGreen.url },
      { UPSTREAM_CA_FILE: certs.caFile, PROXY_WORKERS: '2' },
      async (proxy) => {
        // A fresh connection each (get() uses no agent): handed to both workers in turn.
        for (let i = 0; i < 6; i++) {
          const answer = await get(`${proxy.url}/`);
          expect(answer.status).toBe(200);
          expect(answer.body).toEqual({ slot: 'blue', path: '/' });
        }
        const status = await proxy.status();
        expect(status.slots).toMatchObject({ blue: { healthy: true } });
        expect(status.workers).toHaveLength(2);
      },
    );
  });

  it('without the trust the gate refuses the https slot; forced there, requests get 502 and the proxy lives', async () => {
    await withProxy({ blue: plainBlue.url, green: secureGreen.url }, {}, async (proxy) => {
      const gated = await proxy.switchTo('green');
      expect(gated.status).toBe(409);
      expect(gated.json).toMatchObject({ error: 'target_unhealthy' });
      expect(JSON.stringify(gated.json)).toContain('UNABLE_TO_VERIFY_LEAF_SIGNATURE');

      const forced = await proxy.switchTo('green', '&force=true');
      expect(forced.status).toBe(200);
      const answer = await get(`${proxy.url}/`, { headers: { 'x-request-id': 'forced-1' } });
      expect(answer.status).toBe(502);
      expect(answer.body).toEqual({
        error: 'upstream_certificate',
        slot: 'green',
        request_id: 'forced-1',
      });
      expect(proxy.alive).toBe(true);
      const back = await proxy.admin('POST', '/admin/rollback');
      expect(back.status).toBe(200);
      expect((await get(`${proxy.url}/`)).body).toEqual({ slot: 'blue', path: '/' });
    });
  });
});
