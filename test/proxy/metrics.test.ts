import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LINT_FAILING_DEFAULT_METRICS } from '../../common/process-metrics.js';
import { SwitchService } from '../../proxy/admin/switch-service.js';
import { ProxyMetrics } from '../../proxy/metrics.js';
import { FileSlotStore } from '../../proxy/state/file-store.js';
import { SlotRegistry } from '../../proxy/state/slot-registry.js';
import { twoSlotsAndEdge, type SlotsAndEdge } from '../support/edge.js';
import { checkMetrics } from '../support/promtool.js';
import { headerOf, startFakeSlots, type FakeSlot } from '../support/fake-slot.js';
import { until } from '../support/wait.js';
import { httpRequest } from '../../harness/http-client.js';
import { rawHttp } from '../support/raw-client.js';
import { ProxyProcess } from '../../harness/proxy-process.js';

function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('proxy metrics', () => {
  let t: SlotsAndEdge;

  beforeAll(async () => {
    t = await twoSlotsAndEdge();
  });

  afterAll(() => t?.close());

  // First: the tests after it switch (through the switch service, which counts).
  it('starts every bounded series at zero and shows the store up', async () => {
    const text = await t.metrics();
    for (const slot of ['blue', 'green']) {
      for (const reason of ['refused', 'dns', 'unreachable', 'reset', 'timeout', 'drain_aborted']) {
        expect(
          value(text, `togather_proxy_upstream_errors_total{slot="${slot}",reason="${reason}"}`),
        ).toBeDefined();
      }
    }
    for (const result of ['switched', 'unchanged', 'refused', 'conflict', 'unavailable']) {
      expect(value(text, `togather_proxy_switches_total{result="${result}"}`)).toBe(0);
    }
    expect(value(text, 'togather_proxy_store_up')).toBe(1);
  });

  it('counts requests by slot, bounded method and status, across scrapes', async () => {
    const series = 'togather_proxy_requests_total{slot="blue",method="GET",code="200"}';
    const before = value(await t.metrics(), series) ?? 0;
    for (let i = 0; i < 3; i++) await httpRequest(`${t.url}/echo/${i}`);
    expect(value(await t.metrics(), series)).toBe(before + 3);
    await httpRequest(`${t.url}/echo/again`);
    await httpRequest(`${t.url}/status/404`);
    const text = await t.metrics();
    expect(value(text, series)).toBe(before + 4);
    expect(value(text, 'togather_proxy_requests_total{slot="blue",method="GET",code="404"}')).toBe(
      1,
    );
  });

  it('labels methods outside the standard set OTHER', async () => {
    const answer = await rawHttp(
      t.port,
      'PROPFIND /echo/dav HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n\r\n',
    );
    expect(answer.status).toBe(200);
    const text = await t.metrics();
    expect(
      value(text, 'togather_proxy_requests_total{slot="blue",method="OTHER",code="200"}'),
    ).toBe(1);
    expect(text).not.toContain('method="PROPFIND"');
  });

  it('observes durations and reports in-flight requests, the active slot and the epoch', async () => {
    const count = 'togather_proxy_request_duration_seconds_count{slot="blue"}';
    const before = value(await t.metrics(), count) ?? 0;
    const slow = httpRequest(`${t.url}/slow?ms=1500`, { headers: { 'x-request-id': 'm-slow' } });
    await until(() => t.blue.requests.some((r) => headerOf(r, 'x-request-id') === 'm-slow'));
    let text = await t.metrics();
    expect(value(text, 'togather_proxy_inflight_requests{slot="blue"}')).toBe(1);
    expect(value(text, 'togather_proxy_inflight_requests{slot="green"}')).toBe(0);
    await slow;
    text = await t.metrics();
    expect(value(text, 'togather_proxy_inflight_requests{slot="blue"}')).toBe(0);
    expect(value(text, count)).toBe(before + 1);
    expect(value(text, 'togather_proxy_request_duration_seconds_bucket{le="1",slot="blue"}')).toBe(
      before,
    );

    const state = await t.switchTo('green');
    text = await t.metrics();
    expect(value(text, 'togather_proxy_active_slot{slot="green"}')).toBe(1);
    expect(value(text, 'togather_proxy_active_slot{slot="blue"}')).toBe(0);
    expect(value(text, 'togather_proxy_slot_epoch')).toBe(state.epoch);
    await t.switchTo('blue');
  });

  it('counts the attempts of the switch service by result', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'togather-metrics-'));
    const store = new FileSlotStore({ stateFile: join(dir, 'proxy-state.json') });
    try {
      const metrics = new ProxyMetrics(new Registry(), { processMetrics: false });
      const service = new SwitchService({
        store,
        registry: new SlotRegistry(await store.init('blue')),
        // Every slot is unhealthy: only a forced switch passes the gate.
        gate: async (slot) => ({
          healthy: false,
          url: `http://${slot}.invalid/health`,
          attempts: [],
        }),
        switches: metrics.switches,
        logger: pino({ level: 'silent' }),
      });
      expect(await service.switch('green', { actor: 'test', force: true })).toMatchObject({
        ok: true,
      });
      expect(await service.switch('blue', { actor: 'test' })).toMatchObject({ ok: false });
      expect(await service.rollback({ actor: 'test' })).toMatchObject({ ok: false });
      const text = await metrics.metrics();
      expect(value(text, 'togather_proxy_switches_total{result="switched"}')).toBe(1);
      expect(value(text, 'togather_proxy_switches_total{result="refused"}')).toBe(2);
      expect(metrics.contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('passes promtool check metrics, process metrics included', async () => {
    const metrics = new ProxyMetrics(new Registry());
    metrics.observeRequest('blue', 'GET', 200, 0.012);
    metrics.countUpstreamError('green', 'timeout');
    const own = await metrics.metrics();
    expect(checkMetrics(own)).toEqual({ status: 0, output: '' });
    expect(checkMetrics(await t.metrics())).toEqual({ status: 0, output: '' });
    expect(own).toContain('process_cpu_seconds_total');
    for (const name of LINT_FAILING_DEFAULT_METRICS) expect(own).not.toContain(name);
  });
});

describe('proxy /metrics scraped from the admin listener of a real process', () => {
  let blue: FakeSlot;
  let green: FakeSlot;
  const proxies: ProxyProcess[] = [];

  beforeAll(async () => {
    ({ blue, green } = await startFakeSlots());
  });

  afterAll(async () => {
    for (const proxy of proxies) if (proxy.alive) await proxy.kill('SIGKILL');
    await Promise.all([blue?.close(), green?.close()]);
  });

  for (const workers of ['1', '2']) {
    it(`passes promtool check metrics with PROXY_WORKERS=${workers}${workers === '1' ? '' : ' (the primary aggregating its workers)'}`, async () => {
      const proxy = await ProxyProcess.start({
        blueUrl: blue.url,
        greenUrl: green.url,
        env: { PROXY_WORKERS: workers },
      });
      proxies.push(proxy);
      for (let i = 0; i < 6; i++) await httpRequest(`${proxy.url}/echo/${i}`, { agent: false });
      await httpRequest(`${proxy.url}/status/503`, { agent: false });
      const answer = await proxy.admin('GET', '/metrics');
      expect(answer.status).toBe(200);
      expect(answer.text).toContain(
        'togather_proxy_requests_total{slot="blue",method="GET",code="200"} 6',
      );
      expect(answer.text).toContain('process_cpu_seconds_total');
      expect(checkMetrics(answer.text)).toEqual({ status: 0, output: '' });
      await proxy.stop();
    });
  }
});
