import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acmeKeys } from '../../../proxy/tls/redis-cert-store.js';
import {
  ACME_TEST_DOMAIN as DOMAIN,
  eventually,
  metricValue,
  pebbleSuite,
  type AcmeEdge,
} from '../../support/acme-fixture.js';
import { PEBBLE_MISSING } from '../../support/pebble.js';
import { httpsGet } from '../../support/tls-clients.js';
import { RedisProcess } from '../../../harness/redis-process.js';

const ENCRYPTION_KEY = 'fleet-test-encryption-key-0123456789abcdef';

describe.skipIf(PEBBLE_MISSING !== undefined)(
  `ACME in a fleet sharing Redis${PEBBLE_MISSING ? ` (skipped: ${PEBBLE_MISSING})` : ''}`,
  () => {
    const suite = pebbleSuite();
    let redis: RedisProcess;
    let raw: Redis;
    let prefixes = 0;
    let prefix = '';

    beforeAll(async () => {
      redis = await RedisProcess.start();
      raw = new Redis(redis.url);
    });

    afterAll(async () => {
      raw?.disconnect();
      await redis?.stop();
    });

    const proxy = (
      options: { lockWaitMs?: number; key?: string; answersChallenges?: boolean } = {},
    ) =>
      suite.edge(
        { CERT_ENCRYPTION_KEY: options.key ?? ENCRYPTION_KEY, REDIS_URL: redis.url },
        { ...options, redis: { url: redis.url, keyPrefix: prefix } },
      );

    function freshPrefix(): void {
      prefixes += 1;
      prefix = `acme-fleet-${prefixes}-${process.pid}:`;
    }

    const serial = (e: AcmeEdge) => e.layer.acme!.status()[0]!.serial ?? undefined;
    const orders = (e: AcmeEdge) =>
      metricValue(e.registry, 'togather_proxy_acme_orders_total', { result: 'success' });

    it('two proxies starting together: one orders, both serve the same certificate', async () => {
      freshPrefix();
      const [a, b] = await Promise.all([proxy(), proxy()]);
      const served = await eventually(() => serial(a), 'a certificate on the first proxy');
      expect(await eventually(() => serial(b), 'the certificate on the second')).toBe(served);
      expect((await orders(a))! + (await orders(b))!).toBe(1);
      for (const e of [a, b]) {
        expect((await httpsGet({ port: e.port, servername: DOMAIN, ca: suite.root })).serial).toBe(
          served,
        );
      }
      expect(await raw.exists(acmeKeys(prefix).lock)).toBe(0);
    });

    it('the CA may validate through a proxy that did not order: challenges reach the whole fleet', async () => {
      freshPrefix();
      // Hold the lock as another proxy would, so the second proxy waits while the first orders.
      await raw.set(acmeKeys(prefix).lock, JSON.stringify({ token: 'x' }), 'PX', 10_000);
      const waiting = await proxy({ lockWaitMs: 5000 });
      await waiting.logs.waitFor(
        (line) => line.msg === 'another proxy is ordering; waiting for its result',
      );
      await raw.del(acmeKeys(prefix).lock);
      // The CA's validations reach only `waiting` (a load balancer in front of the fleet).
      const ordering = await proxy({ answersChallenges: false });
      const served = await eventually(() => serial(ordering), 'a certificate');
      expect(await orders(ordering)).toBe(1);
      expect(suite.challenge.forwarded).toEqual([]);
      // Told by pub/sub, long before its own retry: no order of its own.
      expect(await eventually(() => serial(waiting), 'the fleet’s certificate', 3000)).toBe(served);
      expect(await orders(waiting)).toBe(0);
    });

    it('keeps the private keys in Redis encrypted, and a proxy with another key refuses them instead of ordering', async () => {
      freshPrefix();
      const first = await proxy();
      const served = await eventually(() => serial(first), 'a certificate');
      const keys = acmeKeys(prefix);
      const stored = JSON.parse((await raw.get(keys.certificate(DOMAIN)))!) as Record<
        string,
        string
      >;
      expect(stored.cert).toContain('-----BEGIN CERTIFICATE-----');
      expect(stored.key).toMatch(/^v1\.[\w-]+\.[\w-]+\.[\w-]+$/);
      expect(stored.key).not.toContain('PRIVATE KEY');
      const account = JSON.parse((await raw.get(keys.account))!) as Record<string, string>;
      expect(account.key).toMatch(/^v1\./);

      const stranger = await proxy({ key: 'another-encryption-key-that-is-long-enough' });
      const status = await eventually(
        () => stranger.layer.acme!.status().find((s) => s.failures > 0),
        'a failed attempt',
      );
      expect(status.last_error).toBe(
        `${keys.certificate(DOMAIN)}: cannot decrypt (a different CERT_ENCRYPTION_KEY, or the value was altered)`,
      );
      expect(status.serial).toBeNull();
      expect(await orders(stranger)).toBe(0);
      // The fleet's certificate is untouched.
      expect(JSON.parse((await raw.get(keys.certificate(DOMAIN)))!).key).toBe(stored.key);
      expect(serial(first)).toBe(served);
    });
  },
);
