import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFileLock } from '../../deploy/locks/lock-file.js';
import { createRedisLock } from '../../deploy/locks/lock-redis.js';
import { LockHeldError, type DeployLock } from '../../deploy/locks/lock.js';
import { tempDir } from '../support/deploy-fixtures.js';
import { RedisProcess } from '../../harness/redis-process.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let redisServer: RedisProcess;
let redis: Redis;
const dir = tempDir('lock');

beforeAll(async () => {
  redisServer = await RedisProcess.start();
  redis = new Redis(redisServer.url, { lazyConnect: true });
  await redis.connect();
});

afterAll(async () => {
  redis?.disconnect();
  await redisServer?.stop();
  dir.cleanup();
});

/** The same contract for both kinds of lock. */
function contract(name: string, make: (ttlMs: number, id: string) => DeployLock) {
  describe(`${name} deploy lock`, () => {
    it('is exclusive: the second acquire is refused with who holds it and since when', async () => {
      const lock = make(5_000, 'exclusive');
      const held = await lock.acquire('deploy 1.0.0');
      try {
        const error = await lock.acquire('deploy 2.0.0').catch((e: unknown) => e);
        expect(error).toBeInstanceOf(LockHeldError);
        const refused = error as LockHeldError;
        expect(refused.owner.pid).toBe(process.pid);
        expect(refused.owner.since).toBe(held.owner.since);
        expect(refused.message).toMatch(
          new RegExp(
            `^another deploy holds the lock: \\S+@\\S+ pid ${process.pid} since ${held.owner.since.replace(/[.]/g, '\\.')} \\(deploy 1\\.0\\.0\\); it expires in [1-5] s unless renewed$`,
          ),
        );
        expect(await lock.holder()).toMatchObject({ owner: { token: held.owner.token } });
      } finally {
        await held.release();
      }
      expect(await lock.holder()).toBeUndefined();
      const again = await lock.acquire('deploy 2.0.0');
      await again.release();
    });

    it('is renewed while held, beyond its time to live', async () => {
      const lock = make(600, 'renewed');
      const held = await lock.acquire('long deploy');
      await sleep(1_500);
      await expect(lock.acquire('other')).rejects.toBeInstanceOf(LockHeldError);
      await held.release();
    });

    it('release is idempotent and never removes a lock that is no longer ours', async () => {
      const lock = make(5_000, 'release');
      const first = await lock.acquire('first');
      await first.release();
      const second = await lock.acquire('second');
      await first.release(); // late, repeated release of the first holder
      expect((await lock.holder())?.owner.token).toBe(second.owner.token);
      await second.release();
    });
  });
}

contract('Redis', (ttlMs, id) => createRedisLock({ redis, key: `test:${id}:lock`, ttlMs }));
contract('file', (ttlMs, id) => createFileLock({ path: join(dir.path, id, 'deploy.lock'), ttlMs }));

describe('a lock whose holder stopped renewing (killed deploy)', () => {
  it('Redis: expires after its time to live and can then be taken', async () => {
    const key = 'test:killed:lock';
    // What a killed deploy leaves: the value, with no one renewing it.
    await redis.set(
      key,
      JSON.stringify({
        token: 'dead',
        holder: 'ops@elsewhere',
        pid: 4242,
        since: new Date().toISOString(),
        purpose: 'deploy 0.9',
      }),
      'PX',
      800,
    );
    const lock = createRedisLock({ redis, key, ttlMs: 5_000 });
    const refused = (await lock.acquire('x').catch((e: unknown) => e)) as LockHeldError;
    expect(refused).toBeInstanceOf(LockHeldError);
    expect(refused.message).toContain('ops@elsewhere pid 4242');
    await sleep(1_000);
    const held = await lock.acquire('after expiry');
    await held.release();
  });

  it('file: an expired lock of another host is taken over', async () => {
    const path = join(dir.path, 'expired', 'deploy.lock');
    const lock = createFileLock({ path, ttlMs: 5_000 });
    await lock.acquire('setup').then((h) => h.release()); // creates the folder
    writeFileSync(
      path,
      JSON.stringify({
        token: 'dead',
        holder: 'ops@another-host',
        pid: 1,
        since: '2020-01-01T00:00:00.000Z',
        purpose: 'deploy 0.9',
        expires_at: Date.now() + 700,
      }),
    );
    await expect(lock.acquire('too early')).rejects.toThrow(
      'ops@another-host pid 1 since 2020-01-01T00:00:00.000Z',
    );
    await sleep(900);
    const held = await lock.acquire('after expiry');
    expect((await lock.holder())?.owner.purpose).toBe('after expiry');
    await held.release();
  });

  it('file: a lock of a process of this host that no longer exists is taken over at once', async () => {
    const path = join(dir.path, 'dead-pid', 'deploy.lock');
    const lock = createFileLock({ path, ttlMs: 60_000 });
    const held = await lock.acquire('setup');
    await held.release();
    const { hostname } = await import('node:os');
    writeFileSync(
      path,
      JSON.stringify({
        token: 'dead',
        holder: `ops@${hostname()}`,
        pid: 2 ** 22 + 17,
        since: new Date().toISOString(),
        purpose: 'killed',
        expires_at: Date.now() + 60_000,
      }),
    );
    const taken = await lock.acquire('after a killed deploy');
    await taken.release();
  });

  it('file: the holder learns it lost a lock that was removed from under it', async () => {
    const path = join(dir.path, 'lost', 'deploy.lock');
    const lock = createFileLock({ path, ttlMs: 300 });
    const held = await lock.acquire('x');
    const { rmSync } = await import('node:fs');
    rmSync(path);
    await expect(held.lost).resolves.toContain('removed or taken over');
    await held.release();
  });
});
