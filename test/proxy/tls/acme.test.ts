import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ACME_TEST_DOMAIN as DOMAIN,
  eventually,
  metricValue,
  pebbleSuite,
  type AcmeEdge,
} from '../../support/acme-fixture.js';
import { PEBBLE_MISSING, selfSigned } from '../../support/pebble.js';
import { h2Get, httpsGet } from '../../support/tls-clients.js';

describe.skipIf(PEBBLE_MISSING !== undefined)(
  `ACME against pebble${PEBBLE_MISSING ? ` (skipped: ${PEBBLE_MISSING})` : ''}`,
  () => {
    const suite = pebbleSuite();
    let dir: string;

    afterEach(async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    const edge = (env: Record<string, string> = {}) =>
      suite.edge({ ACME_EMAIL: 'ops@togather.test', CERT_DIR: dir, ...env });

    const serving = (e: AcmeEdge) =>
      eventually(() => e.layer.acme!.status()[0]!.serial ?? undefined, 'a certificate');

    it('orders a certificate at start and serves it over HTTP/1.1 and HTTP/2 with a chain to pebble’s root', async () => {
      dir = await mkdtemp(join(tmpdir(), 'togather-acme-'));
      const e = await edge();
      const serial = await serving(e);
      // pebble's validation was answered by the responder, never sent to the slot.
      expect(suite.challenge.forwarded).toEqual([]);

      const h1 = await httpsGet({ port: e.port, servername: DOMAIN, ca: suite.root });
      expect(h1).toMatchObject({ status: 200, body: 'hello 1.1', serial, alpn: 'http/1.1' });
      const h2 = await h2Get({ port: e.port, servername: DOMAIN, ca: suite.root });
      expect(h2).toMatchObject({ status: 200, body: 'hello 2.0', serial, alpn: 'h2' });
      // A client without SNI gets the same (the only) certificate.
      const bare = await httpsGet({ port: e.port, ca: suite.root });
      expect(bare.serial).toBe(serial);

      const [status] = e.layer.acme!.status();
      expect(status).toMatchObject({ domain: DOMAIN, serial, last_error: null, failures: 0 });
      expect(Date.parse(status!.not_after!)).toBeGreaterThan(Date.now());
      expect(Date.parse(status!.next_attempt!)).toBeGreaterThan(Date.now());
      expect(
        await metricValue(e.registry, 'togather_proxy_acme_orders_total', { result: 'success' }),
      ).toBe(1);
      const expiry = await metricValue(e.registry, 'togather_proxy_certificate_expiry_seconds', {
        domain: DOMAIN,
      });
      expect(expiry).toBe(Date.parse(status!.not_after!) / 1000);

      // Stored in CERT_DIR: keys readable by the owner only.
      const cert = new X509Certificate(await readFile(join(dir, `${DOMAIN}.crt`), 'utf8'));
      expect(cert.serialNumber.toUpperCase()).toBe(serial);
      expect((await stat(join(dir, `${DOMAIN}.key`))).mode & 0o777).toBe(0o600);
      expect((await stat(join(dir, 'account.key'))).mode & 0o777).toBe(0o600);
    });

    it('takes the stored certificate at a restart instead of ordering again', async () => {
      dir = await mkdtemp(join(tmpdir(), 'togather-acme-'));
      const first = await edge();
      const serial = await serving(first);
      // Stopped again after the test: stop() may be called twice.
      await first.stop();

      const second = await edge();
      expect(await serving(second)).toBe(serial);
      expect(
        await metricValue(second.registry, 'togather_proxy_acme_orders_total', {
          result: 'success',
        }),
      ).toBe(0);
      expect(
        (await httpsGet({ port: second.port, servername: DOMAIN, ca: suite.root })).serial,
      ).toBe(serial);
    });

    it('serves ACME domains beside a TLS_CERT_DIR, and tells it all in status()', async () => {
      dir = await mkdtemp(join(tmpdir(), 'togather-acme-'));
      const files = join(dir, 'files');
      await mkdir(files);
      await selfSigned(files, 'static.togather.test', { altNames: 'DNS:static.togather.test' });
      const own = await readFile(join(files, 'static.togather.test.crt'), 'utf8');
      const e = await edge({ TLS_CERT_DIR: files });
      const serial = await serving(e);
      const acmeServed = await httpsGet({ port: e.port, servername: DOMAIN, ca: suite.root });
      expect(acmeServed.serial).toBe(serial);
      const fileServed = await httpsGet({
        port: e.port,
        servername: 'static.togather.test',
        ca: own,
      });
      expect(fileServed.serial).toBe(new X509Certificate(own).serialNumber.toUpperCase());
      // Without SNI: the first source's (ACME's) certificate.
      expect((await httpsGet({ port: e.port, ca: suite.root })).serial).toBe(serial);

      const status = e.layer.status();
      expect(status.certificates.map((c) => [c.name, c.source, c.serial])).toEqual([
        [DOMAIN, 'acme', serial],
        ['static.togather.test', 'directory', fileServed.serial],
      ]);
      expect(status.acme).toMatchObject({
        directory: suite.pebble.directoryUrl,
        store: `file ${dir}`,
        domains: [{ domain: DOMAIN, serial, failures: 0, last_error: null }],
      });
      expect(Object.keys(status.acme!.domains[0]!).sort()).toEqual([
        'domain',
        'failures',
        'last_attempt',
        'last_error',
        'next_attempt',
        'not_after',
        'not_before',
        'renew_at',
        'serial',
      ]);
    });
  },
);
