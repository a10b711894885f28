import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { buildInfo } from '../../common/build-info.js';
import { LINT_FAILING_DEFAULT_METRICS } from '../../common/process-metrics.js';
import { buildMetricsApp } from '../../server/metrics.js';
import { startTestEdge, type TestEdge } from '../support/edge.js';
import { checkMetrics } from '../support/promtool.js';
import {
  LogCapture,
  call,
  postgresBackend,
  problem,
  startTestApp,
  type TestApp,
  type TestBackend,
  methodNotAllowed,
} from '../support/server.js';

/**
 * The app's /metrics lives on an internal listener of its own (METRICS_PORT),
 * never on the app's port: the edge proxy forwards every path of that port,
 * so a /metrics there would be public.
 */
let backend: TestBackend;
let server: TestApp;
let metricsApp: FastifyInstance;
let metricsUrl: string;
let edge: TestEdge;

beforeAll(async () => {
  backend = await postgresBackend();
  const registry = new Registry();
  server = await startTestApp({ database: backend.db, registry });
  metricsApp = buildMetricsApp({ registry, logger: new LogCapture().logger });
  await metricsApp.listen({ host: '127.0.0.1', port: 0 });
  const address = metricsApp.server.address();
  if (!address || typeof address === 'string') throw new Error('no address');
  metricsUrl = `http://127.0.0.1:${address.port}/metrics`;
  edge = await startTestEdge({ blueUrl: server.url, greenUrl: server.url });
});

afterAll(async () => {
  await edge?.stop();
  await metricsApp?.close();
  await server?.close();
  await backend?.close();
});

describe('the metrics listener', () => {
  it('serves app info, requests by route template, pool gauges and process metrics', async () => {
    await call(`${server.url}/api/v1/events/00000000-0000-4000-8000-000000000001`);
    await call(`${server.url}/api/v1/events/00000000-0000-4000-8000-000000000002`);
    await call(`${server.url}/no/such/path/${Math.random()}`);
    const result = await call(metricsUrl);
    expect(result.status).toBe(200);
    expect(result.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = result.text;
    const build = buildInfo();
    expect(text).toContain(
      `togather_app_info{version="${build.version}",commit="${build.git_commit}",build_date="${build.build_date}",slot="blue"} 1`,
    );
    expect(text).toContain(
      'togather_http_requests_total{method="GET",route="/api/v1/events/:id",status="404"} 2',
    );
    expect(text).toContain(
      'togather_http_requests_total{method="GET",route="unmatched",status="404"} 1',
    );
    expect(text).toMatch(
      /togather_http_request_duration_seconds_bucket\{le="0\.005",method="GET",route="\/api\/v1\/events\/:id"\}/,
    );
    expect(text).not.toContain('/no/such/path');
    expect(text).not.toContain('00000000-0000-4000-8000-000000000001');
    expect(text).toMatch(/^togather_db_pool_max_connections 5$/m);
    expect(text).toMatch(/^togather_db_pool_connections \d+$/m);
    expect(text).toMatch(/^togather_db_pool_idle_connections \d+$/m);
    expect(text).toMatch(/^togather_db_pool_waiting_requests 0$/m);
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);
  });

  it('scrapes are not app requests: they are neither counted nor in flight', async () => {
    await call(metricsUrl);
    const text = (await call(metricsUrl)).text;
    expect(text).not.toMatch(/route="\/metrics"/);
    expect(text).toMatch(/^togather_http_inflight_requests 0$/m);
  });

  it('passes promtool check metrics (no gauge named like a counter)', async () => {
    const text = (await call(metricsUrl)).text;
    for (const name of LINT_FAILING_DEFAULT_METRICS) expect(text).not.toContain(name);
    expect(checkMetrics(text)).toEqual({ status: 0, output: '' });
  });

  it('HEAD 200, OPTIONS 204 with Allow, other methods 405, other paths the 404 problem', async () => {
    const head = await fetch(metricsUrl, { method: 'HEAD' });
    expect(head.status).toBe(200);
    const options = await call(metricsUrl, { method: 'OPTIONS' });
    expect(options.status).toBe(204);
    expect(options.headers.get('allow')).toBe('GET, HEAD, OPTIONS');
    const post = await call(metricsUrl, { method: 'POST', json: {} });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD, OPTIONS');
    expect(post.body).toEqual(
      methodNotAllowed('POST', 'GET, HEAD, OPTIONS', '/metrics', expect.any(String)),
    );
    const other = await call(metricsUrl.replace('/metrics', '/health'));
    expect(other.status).toBe(404);
    expect(other.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
    expect(other.body).toEqual(
      problem(404, 'Not Found', 'no route for GET /health', '/health', expect.any(String)),
    );
  });
});

describe('the app port', () => {
  it('GET /metrics is the app’s ordinary 404 problem', async () => {
    const result = await call(`${server.url}/metrics`, { headers: { 'x-request-id': 'm-404' } });
    expect(result.status).toBe(404);
    expect(result.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
    expect(result.body).toEqual(
      problem(404, 'Not Found', 'no route for GET /metrics', '/metrics', 'm-404'),
    );
    expect(result.text).not.toContain('togather_app_info');
  });

  it('through the edge proxy /metrics is that 404 too: the app’s metrics are never public', async () => {
    const result = await call(`${edge.url}/metrics`, { headers: { 'x-request-id': 'm-edge' } });
    expect(result.status).toBe(404);
    expect(result.headers.get('x-togather-slot')).toBe('blue');
    expect(result.body).toEqual(
      problem(404, 'Not Found', 'no route for GET /metrics', '/metrics', 'm-edge'),
    );
  });
});

interface ScrapeConfig {
  job_name: string;
  honor_labels?: boolean;
  static_configs?: Array<{ targets: string[]; labels?: Record<string, string> }>;
  relabel_configs?: Array<{ target_label?: string }>;
  metric_relabel_configs?: Array<{ target_label?: string }>;
}

/** Every label name of an exposition text. */
function labelNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const labels = /^[a-zA-Z_:][a-zA-Z0-9_:]*\{(.*)\} /.exec(line)?.[1];
    if (labels === undefined) continue;
    for (const match of labels.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) names.add(match[1]!);
  }
  return names;
}

describe('the shipped Prometheus configuration (deploy/docker/prometheus/prometheus.yml)', () => {
  const config = parse(
    readFileSync(new URL('../../deploy/docker/prometheus/prometheus.yml', import.meta.url), 'utf8'),
  ) as { scrape_configs: ScrapeConfig[] };
  // The jobs scraping the app's containers (togather-server-blue, -green).
  const appJobs = config.scrape_configs.filter((job) =>
    job.static_configs?.some((s) => s.targets.some((t) => t.startsWith('togather-server-'))),
  );

  it('scrapes the app on its metrics port, and only there', () => {
    expect(appJobs.map((job) => job.job_name)).toEqual(['togather-app']);
    const targets = appJobs.flatMap((job) => job.static_configs!.flatMap((s) => s.targets));
    expect(targets.every((target) => target.endsWith(':9464'))).toBe(true);
    const all = config.scrape_configs.flatMap((job) =>
      (job.static_configs ?? []).flatMap((s) => s.targets),
    );
    expect(all.filter((target) => target.endsWith(':8080'))).toEqual([]);
  });

  it('adds no target label the app’s metrics carry (it would turn theirs into exported_*)', async () => {
    const carried = labelNames((await call(metricsUrl)).text);
    expect(carried).toContain('slot');
    for (const job of appJobs) {
      const added = [
        ...(job.static_configs ?? []).flatMap((s) => Object.keys(s.labels ?? {})),
        ...(job.relabel_configs ?? []).map((r) => r.target_label),
        ...(job.metric_relabel_configs ?? []).map((r) => r.target_label),
      ].filter((name): name is string => name !== undefined);
      expect(
        added.filter((name) => carried.has(name) && job.honor_labels !== true),
        job.job_name,
      ).toEqual([]);
    }
  });
});
