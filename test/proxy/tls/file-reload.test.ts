import { X509Certificate } from 'node:crypto';
import { copyFile, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../common/logger.js';
import { createFilePairSource } from '../../../proxy/tls/file-pair-source.js';
import { createTlsListener } from '../../../proxy/tls/tls-listener.js';
import { TlsMetrics } from '../../../proxy/tls/tls-metrics.js';
import { eventually, metricValue } from '../../support/acme-fixture.js';
import { selfSigned } from '../../support/pebble.js';
import { httpsGet, keepAliveAgent, type TlsTarget } from '../../support/tls-clients.js';
import { LogCapture } from '../../support/edge.js';

interface Pair {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
  serial: string;
}

async function makePair(dir: string, name: string): Promise<Pair> {
  const files = await selfSigned(dir, name);
  const cert = await readFile(files.certFile, 'utf8');
  const key = await readFile(files.keyFile, 'utf8');
  return { ...files, cert, key, serial: new X509Certificate(cert).serialNumber.toUpperCase() };
}

describe('TLS_CERT_FILE + TLS_KEY_FILE reload under load', () => {
  let dir: string;
  const pairs: Pair[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'togather-tls-reload-'));
    for (let i = 0; i < 5; i++) pairs.push(await makePair(dir, `pair${i}`));
  });

  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('replaces the certificate several times while requests run: none fails, new connections see each new serial, open ones keep theirs', async () => {
    const certFile = join(dir, 'edge.crt');
    const keyFile = join(dir, 'edge.key');
    await copyFile(pairs[0]!.certFile, certFile);
    await copyFile(pairs[0]!.keyFile, keyFile);
    const logs = new LogCapture();
    const registry = new Registry();
    const source = await createFilePairSource({
      certFile,
      keyFile,
      logger: createLogger({ level: 'info', destination: logs.stream }),
      metrics: new TlsMetrics(registry),
      debounceMs: 50,
      pollMs: 2000,
    });
    const listener = createTlsListener({
      source,
      host: '127.0.0.1',
      port: 0,
      logger: createLogger({ level: 'silent' }),
      http1: { keepAliveTimeout: 30_000 },
      onRequest: (_req, res) => res.end('ok'),
    });
    const { port } = await listener.listen();
    // Every pair is self-signed: the client trusts them all.
    const target: TlsTarget = { port, servername: 'localhost', ca: pairs.map((p) => p.cert) };

    let running = true;
    const failures: string[] = [];
    const seen = { keepAlive: [] as string[], fresh: new Set<string>() };
    let requests = 0;
    const loop = async (agent: ReturnType<typeof keepAliveAgent> | false) => {
      while (running) {
        try {
          const answer = await httpsGet(target, agent);
          requests += 1;
          if (answer.status !== 200 || answer.body !== 'ok')
            failures.push(`status ${answer.status}`);
          if (agent) seen.keepAlive.push(answer.serial);
          else seen.fresh.add(answer.serial);
        } catch (error) {
          failures.push((error as Error).message);
        }
      }
    };
    const agents = [keepAliveAgent(target), keepAliveAgent(target)];
    const workers = [...agents.map((agent) => loop(agent)), loop(false), loop(false)];

    const newSerial = (serial: string) =>
      eventually(
        async () => ((await httpsGet(target)).serial === serial ? true : undefined),
        `new connections to see ${serial}`,
        10_000,
      );
    try {
      await new Promise((r) => setTimeout(r, 300));
      // 1: both files rewritten in place, the key 300 ms after the certificate: the
      // half-replaced pair (new certificate, old key) is refused, then the whole one taken.
      await writeFile(certFile, pairs[1]!.cert);
      await eventually(
        () => logs.find((l) => l.reason === 'key_mismatch'),
        'the refused half-replaced pair',
      );
      await writeFile(keyFile, pairs[1]!.key);
      await newSerial(pairs[1]!.serial);
      // 2: renamed into place (what cert-manager or certbot deploy hooks do).
      await copyFile(pairs[2]!.keyFile, `${keyFile}.new`);
      await copyFile(pairs[2]!.certFile, `${certFile}.new`);
      await rename(`${keyFile}.new`, keyFile);
      await rename(`${certFile}.new`, certFile);
      await newSerial(pairs[2]!.serial);
      // 3: a truncated certificate (a copy cut short) is refused; completed, it is taken.
      await writeFile(keyFile, pairs[3]!.key);
      await writeFile(certFile, pairs[3]!.cert.slice(0, 200));
      await eventually(
        () => logs.find((l) => l.reason === 'unreadable_certificate'),
        'the refused truncated certificate',
      );
      expect((await httpsGet(target)).serial).toBe(pairs[2]!.serial);
      await writeFile(certFile, pairs[3]!.cert);
      await newSerial(pairs[3]!.serial);
      // 4: once more, both at once.
      await Promise.all([writeFile(keyFile, pairs[4]!.key), writeFile(certFile, pairs[4]!.cert)]);
      await newSerial(pairs[4]!.serial);
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      running = false;
      await Promise.all(workers);
      for (const agent of agents) agent.destroy();
      await listener.close(1000);
      await source.close();
    }

    expect(failures).toEqual([]);
    expect(requests).toBeGreaterThan(100);
    for (const pair of pairs.slice(1)) expect(seen.fresh).toContain(pair.serial);
    // The keep-alive connections opened first still answered with the first certificate at the end.
    expect(seen.keepAlive.at(-1)).toBe(pairs[0]!.serial);
    const reloads = (result: string) =>
      metricValue(registry, 'togather_proxy_certificate_reloads_total', { source: 'file', result });
    expect(await reloads('reloaded')).toBe(4);
    expect(await reloads('refused')).toBeGreaterThanOrEqual(2);
    const refused = logs.lines.filter(
      (l) => l.msg === 'TLS certificate not reloaded; the previous one stays in service',
    );
    expect(refused.map((l) => l.reason)).toEqual(
      expect.arrayContaining(['key_mismatch', 'unreadable_certificate']),
    );
  });
});
