import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACME_TEST_DOMAIN as DOMAIN } from '../../support/acme-fixture.js';
import { PEBBLE_MISSING, TestPebble } from '../../support/pebble.js';
import { freePort } from '../../../harness/ports.js';
import { h2Get, httpsGet } from '../../support/tls-clients.js';
import { startFakeSlots, type FakeSlot } from '../../support/fake-slot.js';
import { httpRequest } from '../../../harness/http-client.js';
import { ProxyProcess } from '../../../harness/proxy-process.js';

interface AcmeDomainView {
  domain: string;
  serial: string | null;
  not_after: string | null;
  failures: number;
  last_error: string | null;
}

describe.skipIf(PEBBLE_MISSING !== undefined)(
  `togather proxy with ACME_DOMAINS against pebble${PEBBLE_MISSING ? ` (skipped: ${PEBBLE_MISSING})` : ''}`,
  () => {
    let slots: { blue: FakeSlot; green: FakeSlot };
    let pebble: TestPebble;
    let proxy: ProxyProcess;
    let certDir: string;
    let root: string;
    let tlsPort: number;

    beforeAll(async () => {
      slots = await startFakeSlots();
      // pebble validates HTTP-01 on the proxy's plain port, which must be known before it starts.
      const port = await freePort();
      tlsPort = await freePort();
      pebble = await TestPebble.start({ httpPort: port });
      root = await pebble.rootPem();
      certDir = await mkdtemp(join(tmpdir(), 'togather-acme-proxy-'));
      proxy = await ProxyProcess.start({
        blueUrl: slots.blue.url,
        greenUrl: slots.green.url,
        port,
        env: {
          PROXY_TLS_PORT: String(tlsPort),
          ACME_DOMAINS: DOMAIN,
          ACME_EMAIL: 'ops@togather.test',
          ACME_DIRECTORY_URL: pebble.directoryUrl,
          ACME_CA_FILE: pebble.caFile,
          CERT_DIR: certDir,
          HTTPS_REDIRECT_EXCEPT: '/health',
        },
      });
    });
    afterAll(async () => {
      await proxy?.stop();
      await pebble?.stop();
      await Promise.all([slots?.blue.close(), slots?.green.close()]);
      if (certDir) await rm(certDir, { recursive: true, force: true });
    });

    it('orders a certificate at start, serves it over HTTP/2 and HTTP/1.1, redirects plain HTTP and sets HSTS', async () => {
      await expect
        .poll(
          async () => {
            const status = await proxy.status();
            const tls = status.tls as { acme: { domains: AcmeDomainView[] } };
            return tls.acme.domains[0]!;
          },
          { timeout: 30_000, interval: 200 },
        )
        .toMatchObject({ domain: DOMAIN, serial: expect.stringMatching(/^[0-9A-F]+$/) });
      const status = await proxy.status();
      const tls = status.tls as {
        port: number;
        certificates: Array<{ name: string; source: string; serial: string }>;
        acme: { domains: AcmeDomainView[] };
      };
      const [domain] = tls.acme.domains;
      expect(domain).toMatchObject({ failures: 0, last_error: null });
      expect(tls.port).toBe(tlsPort);
      expect(tls.certificates).toEqual([
        expect.objectContaining({ name: DOMAIN, source: 'acme', serial: domain!.serial }),
      ]);

      const h2 = await h2Get({ port: tlsPort, servername: DOMAIN, ca: root, path: '/events' });
      expect(h2).toMatchObject({ status: 200, alpn: 'h2', serial: domain!.serial });
      expect(JSON.parse(h2.body)).toMatchObject({ slot: 'blue' });
      const h1 = await httpsGet({ port: tlsPort, servername: DOMAIN, ca: root, path: '/events' });
      expect(h1).toMatchObject({ status: 200, alpn: 'http/1.1', serial: domain!.serial });

      const moved = await httpRequest(`${proxy.url}/events?page=2`, {
        headers: { host: DOMAIN },
      });
      expect(moved.status).toBe(308);
      expect(moved.headers.location).toBe(`https://${DOMAIN}:${tlsPort}/events?page=2`);
      expect((await httpRequest(`${proxy.url}/health`)).status).toBe(200);

      const metrics = (await proxy.admin('GET', '/metrics')).text;
      expect(metrics).toMatch(/^togather_proxy_acme_orders_total\{result="success"\} 1$/m);
      const expiry = Date.parse(domain!.not_after!) / 1000;
      expect(metrics).toContain(
        `togather_proxy_certificate_expiry_seconds{domain="${DOMAIN}"} ${expiry}`,
      );
    });

    it('sends Strict-Transport-Security on TLS answers only', async () => {
      const { connect } = await import('node:http2');
      const headers = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const session = connect(`https://127.0.0.1:${tlsPort}`, { servername: DOMAIN, ca: root });
        session.on('error', reject);
        const stream = session.request({ ':path': '/events' });
        stream.on('response', (h) => {
          resolve(h);
          session.close();
        });
        stream.on('error', reject);
        stream.resume();
      });
      expect(headers['strict-transport-security']).toBe('max-age=31536000');
      expect(headers['x-togather-slot']).toBe('blue');
      const plain = await httpRequest(`${proxy.url}/health`);
      expect(plain.headers['strict-transport-security']).toBeUndefined();
    });
  },
);
