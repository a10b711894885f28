import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACME_TEST_DOMAIN as DOMAIN } from '../../support/acme-fixture.js';
import { PEBBLE_MISSING, selfSigned, TestPebble } from '../../support/pebble.js';
import { freePort } from '../../../harness/ports.js';
import { h2Get, httpsGet } from '../../support/tls-clients.js';
import { startFakeSlots, type FakeSlot } from '../../support/fake-slot.js';
import { httpRequest } from '../../../harness/http-client.js';
import { ProxyProcess } from '../../../harness/proxy-process.js';

/**
 * PROXY_WORKERS=2 with TLS: every worker serves the TLS listener on the
 * shared port; the primary alone orders ACME certificates and relays them,
 * and the pending tokens, to the workers over IPC.
 */

/** Pids of the processes that logged an access line for an HTTP/2 request under `path`. */
function servingPids(proxy: ProxyProcess, path: string): Set<number> {
  return new Set(
    proxy
      .logLines()
      .filter((line) => line.log === 'access' && line.path === path)
      .map((line) => line.pid as number),
  );
}

describe('PROXY_WORKERS=2 with TLS', () => {
  let slots: { blue: FakeSlot; green: FakeSlot };

  beforeAll(async () => {
    slots = await startFakeSlots();
  });
  afterAll(async () => {
    await Promise.all([slots?.blue.close(), slots?.green.close()]);
  });

  it('every worker serves the certificate files over HTTP/2 and HTTP/1.1', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'togather-workers-tls-'));
    const tlsPort = await freePort();
    const pair = await selfSigned(dir, 'localhost');
    const ca = await readFile(pair.certFile, 'utf8');
    const proxy = await ProxyProcess.start({
      blueUrl: slots.blue.url,
      greenUrl: slots.green.url,
      env: {
        PROXY_WORKERS: '2',
        PROXY_TLS_PORT: String(tlsPort),
        TLS_CERT_FILE: pair.certFile,
        TLS_KEY_FILE: pair.keyFile,
      },
    });
    try {
      for (let i = 0; i < 12; i++) {
        const answer = await h2Get({
          port: tlsPort,
          servername: 'localhost',
          ca,
          path: '/w-files',
        });
        expect(answer).toMatchObject({ status: 200, alpn: 'h2' });
      }
      const h1 = await httpsGet({ port: tlsPort, servername: 'localhost', ca, path: '/w-files' });
      expect(h1).toMatchObject({ status: 200, alpn: 'http/1.1' });
      const status = await proxy.status();
      const workers = (status.workers as Array<{ pid: number }>).map((w) => w.pid);
      await expect.poll(() => servingPids(proxy, '/w-files').size).toBe(2);
      expect([...servingPids(proxy, '/w-files')].sort()).toEqual([...workers].sort());
      expect(status.tls).toMatchObject({
        port: tlsPort,
        certificates: [expect.objectContaining({ source: 'file' })],
      });
      const moved = await httpRequest(`${proxy.url}/x?y=1`, { headers: { host: 'localhost' } });
      expect(moved.status).toBe(308);
      expect(moved.headers.location).toBe(`https://localhost:${tlsPort}/x?y=1`);
    } finally {
      await proxy.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  describe.skipIf(PEBBLE_MISSING !== undefined)(
    `with ACME_DOMAINS against pebble${PEBBLE_MISSING ? ` (skipped: ${PEBBLE_MISSING})` : ''}`,
    () => {
      let pebble: TestPebble;
      let proxy: ProxyProcess;
      let certDir: string;
      let tlsPort: number;

      beforeAll(async () => {
        const port = await freePort();
        tlsPort = await freePort();
        pebble = await TestPebble.start({ httpPort: port });
        certDir = await mkdtemp(join(tmpdir(), 'togather-workers-acme-'));
        proxy = await ProxyProcess.start({
          blueUrl: slots.blue.url,
          greenUrl: slots.green.url,
          port,
          env: {
            PROXY_WORKERS: '2',
            PROXY_TLS_PORT: String(tlsPort),
            ACME_DOMAINS: DOMAIN,
            ACME_DIRECTORY_URL: pebble.directoryUrl,
            ACME_CA_FILE: pebble.caFile,
            CERT_DIR: certDir,
          },
        });
      });
      afterAll(async () => {
        await proxy?.stop();
        await pebble?.stop();
        if (certDir) await rm(certDir, { recursive: true, force: true });
      });

      it('the primary orders once (the CA’s validation reaches a worker) and every worker serves the certificate', async () => {
        await expect
          .poll(
            async () => {
              const tls = (await proxy.status()).tls as {
                acme: { domains: Array<{ serial: string | null }> };
              };
              return tls.acme.domains[0]!.serial;
            },
            { timeout: 30_000, interval: 200 },
          )
          .toMatch(/^[0-9A-F]+$/);
        const root = await pebble.rootPem();
        const tls = (await proxy.status()).tls as {
          acme: { domains: Array<{ serial: string }> };
        };
        const serial = tls.acme.domains[0]!.serial;
        for (let i = 0; i < 12; i++) {
          const answer = await h2Get({
            port: tlsPort,
            servername: DOMAIN,
            ca: root,
            path: '/w-acme',
          });
          expect(answer).toMatchObject({ status: 200, alpn: 'h2', serial });
        }
        await expect.poll(() => servingPids(proxy, '/w-acme').size).toBe(2);
        expect(await proxy.metric('togather_proxy_acme_orders_total', 'result="success"')).toBe(1);
        // Only the primary placed orders.
        const orders = proxy.logLines().filter((line) => line.msg === 'ACME order');
        expect(new Set(orders.map((line) => line.pid))).toEqual(new Set([proxy.pid]));
      });
    },
  );
});
