import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fastFailRedisOptions } from '../../../proxy/state/redis-store.js';
import { FileCertificateStore } from '../../../proxy/tls/file-cert-store.js';
import { KeyEncryption, SealedValueError } from '../../../proxy/tls/key-encryption.js';
import {
  acmeKeys,
  RedisCertificateStore,
  StoredValueUnreadable,
} from '../../../proxy/tls/redis-cert-store.js';
import { RedisProcess } from '../../../harness/redis-process.js';

const PEM = {
  cert: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
  key: '-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n',
};
const SECRET = 'a-long-random-encryption-secret-0123456789';

describe('file certificate store (CERT_DIR)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = join(await mkdtemp(join(tmpdir(), 'togather-certs-')), 'nested', 'certs');
  });
  afterAll(() => rm(join(dir, '..', '..'), { recursive: true, force: true }));

  it('keeps keys owner-only, certificates readable, nothing half-written', async () => {
    const store = new FileCertificateStore(dir);
    expect(await store.loadCertificate('events.togather.test')).toBeUndefined();
    expect(await store.loadAccountKey()).toBeUndefined();
    await store.saveAccountKey('account-pem');
    await store.saveCertificate('events.togather.test', PEM);
    await store.saveCertificate('events.togather.test', { ...PEM, cert: `${PEM.cert}\n` });
    expect(await store.loadAccountKey()).toBe('account-pem');
    expect(await store.loadCertificate('events.togather.test')).toEqual({
      ...PEM,
      cert: `${PEM.cert}\n`,
    });
    const mode = async (name: string) => (await stat(join(dir, name))).mode & 0o777;
    expect(await mode('account.key')).toBe(0o600);
    expect(await mode('events.togather.test.key')).toBe(0o600);
    expect(await mode('events.togather.test.crt')).toBe(0o644);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await readdir(dir)).sort()).toEqual([
      'account.key',
      'events.togather.test.crt',
      'events.togather.test.key',
    ]);
  });

  it('refuses names that would leave the directory', async () => {
    const store = new FileCertificateStore(dir);
    for (const bad of ['../x', 'a/b', '.hidden', 'a..b', 'UPPER']) {
      await expect(store.loadCertificate(bad)).rejects.toThrow(
        `not a domain name: ${JSON.stringify(bad)}`,
      );
    }
  });
});

describe('private key encryption (CERT_ENCRYPTION_KEY)', () => {
  const sealer = new KeyEncryption(SECRET);

  it('opens what it sealed, under the same context only', () => {
    const sealed = sealer.seal(PEM.key, 'p:acme:cert:a.test');
    expect(sealed).toMatch(/^v1\.[\w-]{16}\.[\w-]{22}\.[\w-]+$/);
    expect(sealed).not.toContain('secret');
    expect(sealer.open(sealed, 'p:acme:cert:a.test')).toBe(PEM.key);
    expect(sealer.seal(PEM.key, 'p:acme:cert:a.test')).not.toBe(sealed);
    expect(() => sealer.open(sealed, 'p:acme:cert:b.test')).toThrow(SealedValueError);
  });

  it('refuses another secret, an altered value, a foreign format and a short secret', () => {
    const sealed = sealer.seal(PEM.key, 'ctx');
    const message = 'cannot decrypt (a different CERT_ENCRYPTION_KEY, or the value was altered)';
    expect(() => new KeyEncryption(`${SECRET}-other`).open(sealed, 'ctx')).toThrow(message);
    const parts = sealed.split('.');
    const flipped = parts[3]!.startsWith('A') ? `B${parts[3]!.slice(1)}` : `A${parts[3]!.slice(1)}`;
    expect(() => sealer.open([...parts.slice(0, 3), flipped].join('.'), 'ctx')).toThrow(message);
    expect(() => sealer.open(PEM.key, 'ctx')).toThrow('not a sealed value of this version');
    expect(() => new KeyEncryption('short')).toThrow('at least 32 characters');
  });
});

describe('Redis certificate store', () => {
  let redis: RedisProcess;
  let client: Redis;
  let n = 0;
  const prefix = () => `certstore-${++n}-${process.pid}:`;

  beforeAll(async () => {
    redis = await RedisProcess.start();
    client = new Redis(redis.url, fastFailRedisOptions());
    client.on('error', () => undefined);
    await client.connect();
  });
  afterAll(async () => {
    client.disconnect();
    await redis.stop();
  });

  it('stores under <prefix>acme:*, certificates in clear, keys sealed; the first account key wins', async () => {
    const keyPrefix = prefix();
    const encryption = new KeyEncryption(SECRET);
    const store = new RedisCertificateStore({ redis: client, keyPrefix, encryption });
    expect(await store.loadCertificate('events.togather.test')).toBeUndefined();
    await store.saveCertificate('events.togather.test', PEM);
    await store.saveAccountKey('first-account');
    await store.saveAccountKey('second-account');
    expect(await store.loadCertificate('events.togather.test')).toEqual(PEM);
    expect(await store.loadAccountKey()).toBe('first-account');
    expect((await client.keys(`${keyPrefix}*`)).sort()).toEqual([
      `${keyPrefix}acme:account`,
      `${keyPrefix}acme:cert:events.togather.test`,
    ]);
    const raw = JSON.parse(
      (await client.get(acmeKeys(keyPrefix).certificate('events.togather.test')))!,
    );
    expect(raw).toMatchObject({ cert: PEM.cert });
    expect(raw.key).toMatch(/^v1\./);
    expect(Date.parse(raw.stored_at)).toBeGreaterThan(Date.now() - 60_000);
  });

  it('says which key is unreadable: not JSON, no certificate, another encryption key', async () => {
    const keyPrefix = prefix();
    const keys = acmeKeys(keyPrefix);
    const store = new RedisCertificateStore({
      redis: client,
      keyPrefix,
      encryption: new KeyEncryption(SECRET),
    });
    await client.set(keys.certificate('a.test'), 'not json');
    await expect(store.loadCertificate('a.test')).rejects.toThrow(
      new StoredValueUnreadable(`${keys.certificate('a.test')} does not hold a JSON object`),
    );
    await client.set(keys.certificate('a.test'), JSON.stringify({ key: 'v1.x.y.z' }));
    await expect(store.loadCertificate('a.test')).rejects.toThrow(
      `${keys.certificate('a.test')} has no certificate`,
    );
    await new RedisCertificateStore({
      redis: client,
      keyPrefix,
      encryption: new KeyEncryption(`${SECRET}-other`),
    }).saveCertificate('a.test', PEM);
    await expect(store.loadCertificate('a.test')).rejects.toThrow(
      `${keys.certificate('a.test')}: cannot decrypt (a different CERT_ENCRYPTION_KEY, or the value was altered)`,
    );
  });

  it('fails fast while Redis is down, and works again when it is back', async () => {
    const store = new RedisCertificateStore({
      redis: client,
      keyPrefix: prefix(),
      encryption: new KeyEncryption(SECRET),
    });
    await redis.kill();
    const started = Date.now();
    await expect(store.loadCertificate('a.test')).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(2000);
    await redis.restart();
    await new Promise<void>((resolve) => {
      if (client.status === 'ready') resolve();
      else client.once('ready', () => resolve());
    });
    expect(await store.loadCertificate('a.test')).toBeUndefined();
  });
});
