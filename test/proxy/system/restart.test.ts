import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeSlots, type FakeSlot } from '../../support/fake-slot.js';
import { converse, sleep } from '../../support/raw-client.js';
import { ProxyProcess } from '../../../harness/proxy-process.js';
import { RedisProcess } from '../../../harness/redis-process.js';

/**
 * `togather proxy` killed with SIGKILL and started again: the slot state
 * comes back from the store (Redis or the state file, which a kill in the
 * middle of a write never leaves half-written), and by the time the admin
 * API answers /healthz the slots' health is known.
 */

type Slot = 'blue' | 'green';

interface SlotView {
  healthy: boolean | null;
  health_checked_at: string | null;
}

let slots: Record<Slot, FakeSlot>;
let redis: RedisProcess;

beforeAll(async () => {
  [slots, redis] = await Promise.all([startFakeSlots(), RedisProcess.start()]);
});

afterAll(async () => {
  await redis?.stop();
  await Promise.all([slots?.blue.close(), slots?.green.close()]);
});

async function servedBy(proxy: ProxyProcess): Promise<string | undefined> {
  const reply = await converse(
    proxy.port,
    'GET /probe HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n\r\n',
  );
  return reply.answers[0]?.headers['x-togather-slot'];
}

describe.each([
  ['the Redis store', true],
  ['the file store', false],
])('SIGKILL and restart with %s', (_name, useRedis) => {
  let proxy: ProxyProcess;

  beforeAll(async () => {
    proxy = await ProxyProcess.start({
      blueUrl: slots.blue.url,
      greenUrl: slots.green.url,
      ...(useRedis ? { redisUrl: redis.url, keyPrefix: `relrestart-${process.pid}:` } : {}),
      env: { ACCESS_LOG: 'off', LOG_LEVEL: 'info' },
    });
  });

  afterAll(async () => {
    slots.blue.setHealth({ status: 200, delayMs: 0 });
    slots.green.setHealth({ delayMs: 0 });
    await proxy?.stop();
  });

  it('comes back on the stored state with both slots health-checked before it reports ready', async () => {
    const switched = await proxy.switchTo('green');
    expect(switched.status, switched.text).toBe(200);
    const before = await proxy.status();
    expect(before).toMatchObject({ active: 'green', previous: 'blue' });

    // Blue turns unhealthy while the proxy is down, and both answer health
    // checks slowly: the restarted proxy must still know both when it is ready.
    await proxy.kill('SIGKILL');
    slots.blue.setHealth({ status: 503, delayMs: 400 });
    slots.green.setHealth({ delayMs: 400 });
    const probesBefore = slots.blue.healthRequests + slots.green.healthRequests;
    proxy = await proxy.restart();

    const after = await proxy.status();
    expect(after).toMatchObject({
      active: 'green',
      previous: 'blue',
      epoch: before.epoch,
      switched_at: before.switched_at,
    });
    const views = after.slots as Record<Slot, SlotView>;
    expect(views.green.healthy).toBe(true);
    expect(views.blue.healthy).toBe(false);
    expect(views.blue.health_checked_at).not.toBeNull();
    expect(slots.blue.healthRequests + slots.green.healthRequests).toBeGreaterThan(probesBefore);
    expect(await servedBy(proxy)).toBe('green');

    // The gate sees blue's state too: no rollback onto an unhealthy slot.
    const rollback = await proxy.admin('POST', '/admin/rollback');
    expect(rollback.status).toBe(409);
    expect(rollback.json).toMatchObject({ error: 'target_unhealthy' });
    slots.blue.setHealth({ status: 200, delayMs: 0 });
    slots.green.setHealth({ delayMs: 0 });
    const back = await proxy.admin('POST', '/admin/rollback');
    expect(back.status, back.text).toBe(200);
    expect(back.json).toMatchObject({ active: 'blue', previous: 'green' });
  });

  it.skipIf(useRedis)(
    'puts back a switch the history lost to a crash between the state write and the history append',
    async () => {
      const answer = await proxy.switchTo(
        ((await proxy.status()).active as Slot) === 'blue' ? 'green' : 'blue',
        '&force=true',
      );
      expect(answer.status, answer.text).toBe(200);
      const epoch = (answer.json as { epoch: number }).epoch;
      await proxy.kill('SIGKILL');
      // The crash came after the state file was renamed into place and before the append.
      const historyFile = join(proxy.stateDir, 'proxy-state.history.jsonl');
      const lines = (await readFile(historyFile, 'utf8')).trimEnd().split('\n');
      expect(JSON.parse(lines[lines.length - 1]!)).toMatchObject({ epoch, result: 'switched' });
      await writeFile(
        historyFile,
        lines
          .slice(0, -1)
          .map((l) => `${l}\n`)
          .join(''),
      );

      proxy = await proxy.restart();
      const history = await proxy.admin('GET', '/admin/history?limit=5');
      const newest = (history.json as { history: Array<{ epoch: number; result: string }> })
        .history[0];
      expect(newest).toMatchObject({ epoch, result: 'switched' });
    },
  );

  it('never finds a half-written state after a SIGKILL in the middle of switching', async () => {
    // Force-switch back and forth as fast as the admin API answers, and kill in the middle.
    let acknowledged = (await proxy.status()).epoch as number;
    let running = true;
    const switching = (async () => {
      while (running) {
        const target =
          (await proxy.status().catch(() => null))?.active === 'blue' ? 'green' : 'blue';
        const answer = await proxy.switchTo(target, '&force=true').catch(() => null);
        if (answer?.status === 200) acknowledged = (answer.json as { epoch: number }).epoch;
      }
    })();
    await sleep(400);
    await proxy.kill('SIGKILL');
    running = false;
    await switching;
    expect(acknowledged).toBeGreaterThan(1);

    if (!useRedis) {
      const text = await readFile(join(proxy.stateDir, 'proxy-state.json'), 'utf8');
      expect(() => JSON.parse(text) as unknown).not.toThrow();
    }
    proxy = await proxy.restart();
    const after = await proxy.status();
    // Every acknowledged switch survived; at most the one in flight at the kill went further.
    expect(after.epoch).toBeGreaterThanOrEqual(acknowledged);
    expect(after.epoch).toBeLessThanOrEqual(acknowledged + 1);
    expect(after.previous).not.toBe(after.active);
    expect(await servedBy(proxy)).toBe(after.active);
    const history = await proxy.admin('GET', '/admin/history?limit=1000');
    const switches = (history.json as { history: Array<{ result: string; epoch: number }> }).history
      .filter((entry) => entry.result === 'switched')
      .map((entry) => entry.epoch);
    expect(switches).toContain(after.epoch);
  });
});
