import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../common/logger.js';
import { createDirectorySource } from '../../../proxy/tls/directory-source.js';
import { createTlsListener, type TlsListener } from '../../../proxy/tls/tls-listener.js';
import { loadTlsConfig } from '../../../proxy/tls/tls-config.js';
import { startTlsLayer, TlsStartError } from '../../../proxy/tls/tls-layer.js';
import { TlsMetrics } from '../../../proxy/tls/tls-metrics.js';
import type { CertificateSource } from '../../../proxy/tls/certificate-source.js';
import { eventually, metricValue } from '../../support/acme-fixture.js';
import { selfSigned } from '../../support/pebble.js';
import { httpsGet } from '../../support/tls-clients.js';
import { LogCapture } from '../../support/edge.js';

const silent = createLogger({ level: 'silent' });

/** A self-signed pair for these names, written as `<dir>/<file>.crt|.key`; returns its serial and PEM. */
async function pair(dir: string, file: string, names: string[]) {
  const { certFile } = await selfSigned(dir, file, {
    altNames: names.map((n) => `DNS:${n}`).join(','),
  });
  const cert = await readFile(certFile, 'utf8');
  return { cert, serial: new X509Certificate(cert).serialNumber.toUpperCase() };
}

describe('TLS_CERT_DIR: certificates chosen by SNI', () => {
  let dir: string;
  let spare: string;
  let source: CertificateSource;
  let listener: TlsListener;
  let port: number;
  let registry: Registry;
  const logs = new LogCapture();
  const certs: Record<string, { cert: string; serial: string }> = {};

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'togather-tls-dir-'));
    spare = await mkdtemp(join(tmpdir(), 'togather-tls-spare-'));
    certs.a = await pair(dir, 'a.togather.test', ['a.togather.test']);
    certs.b = await pair(dir, 'B.Togather.Test', ['b.togather.test']);
    certs.wild = await pair(dir, '*.wild.togather.test', ['*.wild.togather.test']);
    certs.default = await pair(dir, 'default', ['fallback.togather.test']);
    // A pair whose key belongs to another certificate: refused, the others load.
    const other = await pair(spare, 'other', ['other.togather.test']);
    certs.broken = other;
    await writeFile(join(dir, 'broken.togather.test.crt'), other.cert);
    await writeFile(
      join(dir, 'broken.togather.test.key'),
      await readFile(join(dir, 'a.togather.test.key')),
    );
    // A key without a certificate (ACME's account key in CERT_DIR) is no pair: ignored.
    await writeFile(join(dir, 'account.key'), await readFile(join(spare, 'other.key')));
    registry = new Registry();
    source = await createDirectorySource({
      directory: dir,
      logger: createLogger({ level: 'info', destination: logs.stream }),
      metrics: new TlsMetrics(registry),
      debounceMs: 50,
      pollMs: 500,
    });
    listener = createTlsListener({
      source,
      host: '127.0.0.1',
      port: 0,
      logger: silent,
      onRequest: (_req, res) => res.end('ok'),
    });
    port = (await listener.listen()).port;
  });

  afterAll(async () => {
    await listener?.close(1000);
    await source?.close();
    await rm(dir, { recursive: true, force: true });
    await rm(spare, { recursive: true, force: true });
  });

  const ca = () => Object.values(certs).map((c) => c.cert);
  /** The serial served for a name, or the client's refusal. */
  const serialFor = (servername?: string) =>
    httpsGet({ port, servername, ca: ca() }).then(
      (answer) => answer.serial,
      (error: Error) => error.message,
    );

  it('serves each host its own pair, in any case, with wildcard files one label deep', async () => {
    expect(await serialFor('a.togather.test')).toBe(certs.a!.serial);
    expect(await serialFor('A.TOGATHER.TEST')).toBe(certs.a!.serial);
    expect(await serialFor('b.togather.test')).toBe(certs.b!.serial);
    expect(await serialFor('x.wild.togather.test')).toBe(certs.wild!.serial);
  });

  it('serves default.crt to clients without SNI and to names no pair covers', async () => {
    expect(await serialFor(undefined)).toBe(certs.default!.serial);
    const unknown = await httpsGet({
      port,
      servername: 'nobody.togather.test',
      ca: ca(),
    }).catch((error: Error) => error.message);
    // The default certificate does not name it, so a verifying client refuses it.
    expect(unknown).toMatch(/does not match certificate's altnames/);
    const deep = await httpsGet({ port, servername: 'a.b.wild.togather.test', ca: ca() }).catch(
      (error: Error) => error.message,
    );
    expect(deep).toMatch(/does not match certificate's altnames/);
  });

  it('refuses a pair whose key does not match, with a log line and a metric, and serves the rest; a lone key is ignored', async () => {
    expect(logs.find((l) => l.host === 'broken.togather.test')).toMatchObject({
      reason: 'key_mismatch',
      msg: 'TLS certificate not loaded',
    });
    expect(
      source
        .certificates()
        .map((c) => c.name)
        .sort(),
    ).toEqual(['*.wild.togather.test', 'B.Togather.Test', 'a.togather.test', 'default']);
    expect(logs.find((l) => l.host === 'account')).toBeUndefined();
    expect(
      await metricValue(registry, 'togather_proxy_certificate_reloads_total', {
        source: 'directory',
        result: 'refused',
      }),
    ).toBe(1);
  });

  it('picks up a pair added, replaced or removed while running', async () => {
    certs.c = await pair(dir, 'c.togather.test', ['c.togather.test']);
    await eventually(
      async () => ((await serialFor('c.togather.test')) === certs.c!.serial ? true : undefined),
      'the added pair',
    );
    const next = await pair(spare, 'a-next', ['a.togather.test']);
    certs.aNext = next;
    await writeFile(join(dir, 'a.togather.test.key'), await readFile(join(spare, 'a-next.key')));
    await writeFile(join(dir, 'a.togather.test.crt'), next.cert);
    await eventually(
      async () => ((await serialFor('a.togather.test')) === next.serial ? true : undefined),
      'the replaced pair',
    );
    await rm(join(dir, 'c.togather.test.crt'));
    await rm(join(dir, 'c.togather.test.key'));
    await eventually(
      () => (source.certificates().some((c) => c.name === 'c.togather.test') ? undefined : true),
      'the removed pair to be dropped',
    );
    expect(await serialFor('c.togather.test')).toMatch(/altnames/);
  });
});

describe('certificate files at start', () => {
  let dir: string;
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const startError = (env: Record<string, string>) =>
    startTlsLayer({ config: loadTlsConfig(env), logger: silent, registry: new Registry() }).then(
      () => 'started',
      (error: Error) =>
        error instanceof TlsStartError ? error.message : `unexpected: ${error.stack}`,
    );

  it('refuses to start with a missing, unreadable or mismatched pair, saying which variable', async () => {
    dir = await mkdtemp(join(tmpdir(), 'togather-tls-start-'));
    const one = await selfSigned(dir, 'one');
    const two = await selfSigned(dir, 'two');
    const serial = new X509Certificate(await readFile(one.certFile)).serialNumber;
    expect(
      await startError({ TLS_CERT_FILE: join(dir, 'none.crt'), TLS_KEY_FILE: one.keyFile }),
    ).toBe(`TLS_CERT_FILE/TLS_KEY_FILE: cannot read ${join(dir, 'none.crt')}: ENOENT`);
    expect(await startError({ TLS_CERT_FILE: one.keyFile, TLS_KEY_FILE: one.keyFile })).toBe(
      'TLS_CERT_FILE/TLS_KEY_FILE: no PEM certificate in it',
    );
    expect(await startError({ TLS_CERT_FILE: one.certFile, TLS_KEY_FILE: two.keyFile })).toBe(
      `TLS_CERT_FILE/TLS_KEY_FILE: the private key does not belong to the certificate (serial ${serial})`,
    );
    const empty = join(dir, 'empty');
    await mkdir(empty);
    expect(await startError({ TLS_CERT_DIR: empty })).toBe(
      `TLS_CERT_DIR: no usable <host>.crt + <host>.key pair in ${empty}`,
    );
    expect(await startError({ TLS_CERT_DIR: join(dir, 'absent') })).toMatch(
      /^TLS_CERT_DIR: ENOENT: no such file or directory/,
    );
    expect(
      await startError({
        ACME_DOMAINS: 'events.togather.test',
        ACME_CA_FILE: join(dir, 'no-ca.pem'),
      }),
    ).toBe(`ACME_CA_FILE: cannot read ${join(dir, 'no-ca.pem')} (ENOENT)`);
    expect(
      await startError({ ACME_DOMAINS: 'events.togather.test', ACME_CA_FILE: one.keyFile }),
    ).toBe(`ACME_CA_FILE: ${one.keyFile} holds no PEM certificate`);
  });

  it('notices a change by its periodic check when no file event arrives in time', async () => {
    dir = await mkdtemp(join(tmpdir(), 'togather-tls-poll-'));
    const one = await selfSigned(dir, 'host.togather.test');
    const next = await selfSigned(await mkdtemp(join(dir, 'next-')), 'host.togather.test');
    const source = await createDirectorySource({
      directory: dir,
      logger: silent,
      metrics: new TlsMetrics(new Registry()),
      // Events wait an hour: only the periodic check can see the change.
      debounceMs: 3_600_000,
      pollMs: 200,
    });
    try {
      const before = source.certificates()[0]!.certificate.info.serial;
      await writeFile(one.keyFile, await readFile(next.keyFile));
      await writeFile(one.certFile, await readFile(next.certFile));
      const expected = new X509Certificate(
        await readFile(next.certFile),
      ).serialNumber.toUpperCase();
      expect(
        await eventually(
          () => {
            const now = source.certificates()[0]!.certificate.info.serial;
            return now !== before ? now : undefined;
          },
          'the periodic check',
          5000,
        ),
      ).toBe(expected);
    } finally {
      await source.close();
    }
  });
});
