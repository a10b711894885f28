import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROXY_NODE_FLAGS } from '../../../proxy/heap-tuning.js';
import { startFakeSlots, type FakeSlot } from '../../support/fake-slot.js';
import { freePort } from '../../../harness/ports.js';
import { runCli } from '../../support/processes.js';
import { valueOf } from '../../support/wait.js';
import { httpRequest, type HttpAnswer } from '../../../harness/http-client.js';
import { PROCESS_ADMIN_KEY, ProxyProcess } from '../../../harness/proxy-process.js';
import { RedisProcess } from '../../../harness/redis-process.js';

/**
 * PROXY_WORKERS=2 (issue 5): `togather proxy` as a cluster primary with two
 * worker processes on the public port. The primary owns the store and the
 * admin API and relays every slot state to the workers; /admin/status and
 * /metrics speak for all of them.
 */

interface WorkerEntry {
  id: number;
  pid: number;
  ready: boolean;
  responding: boolean;
  epoch: number;
  active: string | null;
  inflight: { blue: number; green: number } | null;
}

interface Status {
  active: string;
  epoch: number;
  slots: Record<'blue' | 'green', { inflight: number; draining: boolean }>;
  workers: WorkerEntry[];
}

/** `n` requests, each on a new connection, so the cluster spreads them over the workers. */
async function requests(url: string, n: number, path = '/events'): Promise<HttpAnswer[]> {
  const answers: HttpAnswer[] = [];
  for (let i = 0; i < n; i++) answers.push(await httpRequest(`${url}${path}`, { agent: false }));
  return answers;
}

/** The pids that wrote access-log lines, with the slot each line names. */
function accessLines(proxy: ProxyProcess): Array<{ pid: number; slot: string; path: string }> {
  return proxy
    .logLines()
    .filter((line) => line.log === 'access')
    .map((line) => ({
      pid: line.pid as number,
      slot: line.slot as string,
      path: line.path as string,
    }));
}

async function status(proxy: ProxyProcess): Promise<Status> {
  return (await proxy.status()) as unknown as Status;
}

function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 15_000,
): Promise<T> {
  return valueOf(probe, { what, timeout: timeoutMs, interval: 50 });
}

/** Sum of every sample of a metric (all label sets). */
function total(exposition: string, name: string): number {
  let sum = 0;
  for (const line of exposition.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) {
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return sum;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

interface RedisCluster {
  redis: RedisProcess;
  slots: Record<'blue' | 'green', FakeSlot>;
  proxy: ProxyProcess;
}

/** A private Redis, two fake slots and `togather proxy` with PROXY_WORKERS=2 on them. */
async function startRedisCluster(name: string): Promise<RedisCluster> {
  const redis = await RedisProcess.start();
  const slots = await startFakeSlots();
  const proxy = await ProxyProcess.start({
    blueUrl: slots.blue.url,
    greenUrl: slots.green.url,
    redisUrl: redis.url,
    keyPrefix: `${name}-${process.pid}:`,
    env: { PROXY_WORKERS: '2' },
  });
  return { redis, slots, proxy };
}

async function stopRedisCluster(cluster: Partial<RedisCluster>): Promise<void> {
  if (cluster.proxy?.alive) await cluster.proxy.kill('SIGKILL');
  await Promise.all([cluster.slots?.blue.close(), cluster.slots?.green.close()]);
  await cluster.redis?.stop();
}

describe('PROXY_WORKERS=2 on Redis', () => {
  let redis: RedisProcess;
  let slots: Record<'blue' | 'green', FakeSlot>;
  let proxy: ProxyProcess;
  /** Requests sent through the public listener so far (for the metrics totals). */
  let sent = 0;

  beforeAll(async () => {
    ({ redis, slots, proxy } = await startRedisCluster('workers'));
  });

  afterAll(async () => {
    await stopRedisCluster({ redis, slots, proxy });
  });

  it('starts its workers with the proxy node flags (PROXY_NODE_FLAGS), which V8 takes', async () => {
    const { workers } = await status(proxy);
    // This primary was started without them: the workers get them from the pool.
    expect(readFileSync(`/proc/${proxy.pid}/cmdline`, 'utf8').split('\0')).not.toContain(
      PROXY_NODE_FLAGS[0],
    );
    for (const { pid } of workers) {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      const script = argv.findIndex((arg) => arg.endsWith('worker-main.js'));
      expect(argv.slice(1, script)).toEqual(expect.arrayContaining([...PROXY_NODE_FLAGS]));
    }
  });

  it('serves through two worker processes, listed with their pids in /admin/status', async () => {
    const before = await status(proxy);
    expect(before.workers).toHaveLength(2);
    const pids = before.workers.map((w) => w.pid);
    expect(new Set(pids).size).toBe(2);
    expect(pids).not.toContain(proxy.pid);
    for (const worker of before.workers) {
      expect(worker).toMatchObject({ ready: true, responding: true, epoch: 0, active: 'blue' });
    }

    const answers = await requests(proxy.url, 20);
    sent += answers.length;
    for (const answer of answers) {
      expect(answer.status).toBe(200);
      expect(answer.headers['x-togather-slot']).toBe('blue');
      expect(JSON.parse(answer.body)).toEqual({ slot: 'blue', path: '/events' });
    }
    // Every worker served some: each writes its own access-log lines.
    await waitFor('access lines from both workers', async () => {
      const writers = new Set(accessLines(proxy).map((line) => line.pid));
      return pids.every((pid) => writers.has(pid)) ? true : undefined;
    });
  });

  it('a switch through the admin API is applied by every worker before its 200', async () => {
    const answer = await proxy.switchTo('green', '&force=true');
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({
      active: 'green',
      previous: 'blue',
      epoch: 1,
      changed: true,
    });

    const after = await requests(proxy.url, 40, '/after-switch');
    sent += after.length;
    expect(after.map((a) => a.headers['x-togather-slot'])).toEqual(Array(40).fill('green'));
    expect(after.map((a) => JSON.parse(a.body).slot)).toEqual(Array(40).fill('green'));

    const now = await status(proxy);
    expect(now).toMatchObject({ active: 'green', epoch: 1 });
    for (const worker of now.workers) expect(worker).toMatchObject({ epoch: 1, active: 'green' });
    const servedAfter = accessLines(proxy).filter((line) => line.path === '/after-switch');
    expect(new Set(servedAfter.map((line) => line.pid))).toEqual(
      new Set(now.workers.map((w) => w.pid)),
    );
    expect(servedAfter.every((line) => line.slot === 'green')).toBe(true);
  });

  it('/admin/status sums the requests in flight over the workers', async () => {
    const slow = Promise.all([
      httpRequest(`${proxy.url}/slow?ms=1500`, { agent: false }),
      httpRequest(`${proxy.url}/slow?ms=1500`, { agent: false }),
      httpRequest(`${proxy.url}/slow?ms=1500`, { agent: false }),
      httpRequest(`${proxy.url}/slow?ms=1500`, { agent: false }),
    ]);
    sent += 4;
    const during = await waitFor('four requests in flight', async () => {
      const current = await status(proxy);
      return current.slots.green.inflight === 4 ? current : undefined;
    });
    const perWorker = during.workers.map((w) => w.inflight?.green ?? 0);
    expect(perWorker.reduce((a, b) => a + b, 0)).toBe(4);
    // Round-robin hands the four new connections to both workers.
    expect(perWorker.every((n) => n > 0)).toBe(true);
    expect((await slow).map((a) => a.status)).toEqual([200, 200, 200, 200]);
  });

  it('/metrics adds the workers up, and does not add up the slot state', async () => {
    const answer = await proxy.admin('GET', '/metrics');
    expect(answer.status).toBe(200);
    const text = answer.text;
    expect(total(text, 'togather_proxy_requests_total')).toBe(sent);
    expect(total(text, 'togather_proxy_request_duration_seconds_count')).toBe(sent);
    expect(text).toContain(
      'togather_proxy_requests_total{slot="blue",method="GET",code="200"} 20\n',
    );
    expect(text).toContain(
      `togather_proxy_requests_total{slot="green",method="GET",code="200"} ${sent - 20}\n`,
    );
    expect(text).toContain('togather_proxy_active_slot{slot="blue"} 0\n');
    expect(text).toContain('togather_proxy_active_slot{slot="green"} 1\n');
    expect(text).toContain('togather_proxy_slot_epoch 1\n');
    expect(text).toContain('togather_proxy_store_up 1\n');
    expect(text).toContain('togather_proxy_switches_total{result="switched"} 1\n');
    expect(text).toContain('togather_proxy_inflight_requests{slot="green"} 0\n');
    expect(text).toContain('togather_proxy_worker_restarts_total 0\n');
    // One HELP and one TYPE line per metric, whatever the number of processes.
    expect(text.match(/^# TYPE togather_proxy_requests_total /gm)).toHaveLength(1);
  });

  it('a worker that does not answer: /metrics is 503 workers_unresponsive, /admin/status lists it as not responding', async () => {
    const [stuck] = (await status(proxy)).workers;
    process.kill(stuck!.pid, 'SIGSTOP');
    try {
      const metrics = await proxy.admin('GET', '/metrics');
      expect(metrics.status).toBe(503);
      expect(metrics.json).toEqual({
        error: 'workers_unresponsive',
        message: `no metrics from worker ${stuck!.id} (pid ${stuck!.pid}) within 2000 ms`,
      });
      const current = await status(proxy);
      expect(current.workers.find((w) => w.pid === stuck!.pid)).toMatchObject({
        responding: false,
        active: null,
        inflight: null,
      });
    } finally {
      process.kill(stuck!.pid, 'SIGCONT');
    }
  });

  it('a worker killed with SIGKILL is replaced, applies the current state, and traffic goes on', async () => {
    // A scrape before the kill: what the victim counted until then must stay in the sums.
    const scraped = await proxy.admin('GET', '/metrics');
    expect(total(scraped.text, 'togather_proxy_requests_total')).toBe(sent);
    const before = await status(proxy);
    const [victim, survivor] = before.workers;
    process.kill(victim!.pid, 'SIGKILL');
    const after = await waitFor('a replacement worker', async () => {
      const current = await status(proxy);
      const fresh = current.workers.filter((w) => w.pid !== survivor!.pid);
      return current.workers.length === 2 &&
        fresh.length === 1 &&
        fresh[0]!.pid !== victim!.pid &&
        fresh[0]!.ready
        ? current
        : undefined;
    });
    const replacement = after.workers.find((w) => w.pid !== survivor!.pid)!;
    expect(replacement).toMatchObject({ epoch: 1, active: 'green', responding: true });
    expect(alive(victim!.pid)).toBe(false);

    const answers = await requests(proxy.url, 20, '/after-restart');
    sent += answers.length;
    expect(answers.map((a) => a.status)).toEqual(Array(20).fill(200));
    expect(answers.map((a) => a.headers['x-togather-slot'])).toEqual(Array(20).fill('green'));
    const served = accessLines(proxy).filter((line) => line.path === '/after-restart');
    expect(served.some((line) => line.pid === replacement.pid)).toBe(true);

    const exited = proxy
      .logLines()
      .find((line) => line.msg === 'proxy worker exited: starting a replacement');
    expect(exited).toMatchObject({
      level: 40,
      pid: proxy.pid,
      worker_pid: victim!.pid,
      signal: 'SIGKILL',
    });
    expect(await proxy.metric('togather_proxy_worker_restarts_total')).toBe(1);
    // Counters and histograms went on from where they were: no reset for Prometheus to see.
    const text = (await proxy.admin('GET', '/metrics')).text;
    expect(total(text, 'togather_proxy_requests_total')).toBe(sent);
    expect(total(text, 'togather_proxy_request_duration_seconds_count')).toBe(sent);
    expect(text).toContain(
      'togather_proxy_requests_total{slot="blue",method="GET",code="200"} 20\n',
    );
    // Gauges speak for the live workers only.
    expect(text).toContain('togather_proxy_inflight_requests{slot="green"} 0\n');
  });

  it('SIGTERM lets a request in flight finish on a worker, stops every worker and exits 0', async () => {
    const workers = (await status(proxy)).workers.map((w) => w.pid);
    const slow = httpRequest(`${proxy.url}/slow?ms=700`, { agent: false });
    await waitFor('the request in flight', async () =>
      (await status(proxy)).slots.green.inflight === 1 ? true : undefined,
    );
    const exit = proxy.process.stop('SIGTERM', 15_000);
    const answer = await slow;
    expect(answer.status).toBe(200);
    expect(answer.headers['x-togather-slot']).toBe('green');
    expect(answer.headers.connection).toBe('close');
    expect(await exit).toEqual({ code: 0, signal: null });
    for (const pid of workers) expect(alive(pid)).toBe(false);
    expect(proxy.logLines().some((line) => line.msg === 'togather proxy stopped')).toBe(true);
  });
});

describe('PROXY_WORKERS=2 on the file store', () => {
  let slots: Record<'blue' | 'green', FakeSlot>;
  let proxy: ProxyProcess;

  beforeAll(async () => {
    slots = await startFakeSlots();
    proxy = await ProxyProcess.start({
      blueUrl: slots.blue.url,
      greenUrl: slots.green.url,
      env: { PROXY_WORKERS: '2' },
    });
  });

  afterAll(async () => {
    await proxy?.stop();
    await Promise.all([slots?.blue.close(), slots?.green.close()]);
  });

  it('the primary writes the state file and relays each switch to both workers', async () => {
    expect((await proxy.switchTo('green', '&force=true')).status).toBe(200);
    const answers = await requests(proxy.url, 20);
    expect(answers.map((a) => a.headers['x-togather-slot'])).toEqual(Array(20).fill('green'));
    const back = await proxy.admin('POST', '/admin/rollback?force=true');
    expect(back.json).toMatchObject({ active: 'blue', epoch: 2, changed: true });
    const again = await requests(proxy.url, 20);
    expect(again.map((a) => a.headers['x-togather-slot'])).toEqual(Array(20).fill('blue'));
    const current = await status(proxy);
    expect(current.workers.map((w) => [w.epoch, w.active])).toEqual([
      [2, 'blue'],
      [2, 'blue'],
    ]);
  });
});

describe('PROXY_WORKERS=2: togather_proxy_store_up', () => {
  let cluster: RedisCluster;

  beforeAll(async () => {
    cluster = await startRedisCluster('workers-store-up');
  });

  afterAll(async () => {
    await stopRedisCluster(cluster ?? {});
  });

  it("is the primary store's availability: 1, 0 while Redis is down, 1 once it is back", async () => {
    const { redis, proxy } = cluster;
    const storeUp = () => proxy.metric('togather_proxy_store_up');
    expect(await storeUp()).toBe(1);
    await redis.kill();
    await expect.poll(storeUp, { timeout: 15_000, interval: 100 }).toBe(0);
    // The workers still serve the last known slot meanwhile.
    const during = await httpRequest(`${proxy.url}/events`, { agent: false });
    expect(during.status).toBe(200);
    await redis.restart();
    await expect.poll(storeUp, { timeout: 15_000, interval: 100 }).toBe(1);
    // One sample, not one per process.
    const text = (await proxy.admin('GET', '/metrics')).text;
    expect(text.split('\n').filter((l) => l.startsWith('togather_proxy_store_up '))).toEqual([
      'togather_proxy_store_up 1',
    ]);
  });
});

describe('PROXY_WORKERS refusals', () => {
  it.each(['0', '65', 'two', '1.5'])(
    'PROXY_WORKERS=%s exits 2 naming the variable',
    async (value) => {
      const result = await runCli(['proxy'], {
        PROXY_WORKERS: value,
        ADMIN_API_KEY: PROCESS_ADMIN_KEY,
        PROXY_HOST: '127.0.0.1',
        PROXY_PORT: '0',
        ADMIN_PORT: '0',
      });
      expect(result.code).toBe(2);
      expect(result.stderr).toBe(
        'togather: invalid configuration:\n  - PROXY_WORKERS: must be a whole number from 1 to 64\n',
      );
    },
  );

  it('a public port in use: no worker can listen, start-up fails with exit 1 and the reason', async () => {
    const slots = await startFakeSlots();
    const taken = await ProxyProcess.start({ blueUrl: slots.blue.url, greenUrl: slots.green.url });
    try {
      const result = await runCli(['proxy'], {
        PROXY_WORKERS: '2',
        ADMIN_API_KEY: PROCESS_ADMIN_KEY,
        PROXY_HOST: '127.0.0.1',
        PROXY_PORT: String(taken.port),
        ADMIN_HOST: '127.0.0.1',
        ADMIN_PORT: String(await freePort()),
        BLUE_URL: slots.blue.url,
        GREEN_URL: slots.green.url,
        STATE_FILE: `${taken.stateDir}/other-state.json`,
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(
        /^togather: cannot start the proxy: a port is already in use \(.*EADDRINUSE.*\)\n$/,
      );
    } finally {
      await taken.stop();
      await Promise.all([slots.blue.close(), slots.green.close()]);
    }
  });
});
