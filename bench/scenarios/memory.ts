/**
 * Scenario 4, memory: the proxy's resident set (process tree) idle, under 256
 * connections, and across a long run, with the growth from 20 % of the
 * requests (200k of 1M) to the end: a leak shows as steady growth there.
 * Then, for each large body of --bodies (64 KiB, 1 MiB), a fresh proxy under
 * 256 connections for the steady duration (at least 10 s): its peak RSS, the
 * figure the target is about (under 150 MB).
 *
 * The proxy runs with the node flags it is deployed with (PROXY_NODE_FLAGS).
 * The long run's load stays autocannon whatever --loader says: it stops
 * after a number of requests and samples RSS against the response count as
 * it goes; wrk only runs for a duration and reports at the end. The
 * large-body runs take --loader (wrk by default), with RSS sampled on a
 * timer: autocannon reading 1 MiB bodies on 256 connections would take the
 * core the proxy needs.
 */
import { performance } from 'node:perf_hooks';
import { PROXY_NODE_FLAGS } from '../../proxy/heap-tuning.js';
import { runLoad, type LoadResult } from '../load.js';
import { startProxy } from '../proxy-process.js';
import { rssBytes } from '../proc.js';
import { sleep } from '../processes.js';
import {
  proxyUnavailable,
  type Scenario,
  type ScenarioContext,
  type ScenarioOutcome,
} from '../scenario.js';
import { fixed, megabytes, thousands } from '../stats.js';
import { startUpstream } from '../upstream-process.js';
import { BODIES, bodyPath, UPSTREAM_PATHS, type BodyName } from '../upstream.js';

const CONNECTIONS = 256;
/** Where growth is measured from: the JIT, pools and buffers have settled by then. */
const SETTLED_FRACTION = 0.2;
/** Shortest large-body run: the peak needs a few full GC cycles to show. */
const MIN_LARGE_BODY_SECONDS = 10;
const RSS_SAMPLE_MS = 250;

/** One large-body run: a fresh proxy under 256 connections. */
interface LargeBodyRun {
  body: BodyName;
  loader: string;
  seconds: number;
  responses: number;
  requestsPerSecond: number;
  errors: number;
  non2xx: number;
  idleRss: number;
  peakRss: number;
  endRss: number;
}

async function largeBodyRun(context: ScenarioContext, body: BodyName): Promise<LargeBodyRun> {
  const upstream = await startUpstream('blue');
  const proxy = await startProxy({
    name: `memory-${body}`,
    blueUrl: upstream.url,
    greenUrl: upstream.url,
    nodeArgs: [...PROXY_NODE_FLAGS],
    cpuProfileDir: context.options.cpuProfileDir,
  });
  try {
    await sleep(1_000);
    const idleRss = rssBytes(proxy.pids());
    let peakRss = idleRss;
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, rssBytes(proxy.pids()));
    }, RSS_SAMPLE_MS);
    const seconds = Math.max(context.options.durationSeconds, MIN_LARGE_BODY_SECONDS);
    try {
      const figures = await context.loader.run({
        url: `${proxy.url}${bodyPath(body, context.options.framings[0] ?? 'chunked')}`,
        connections: CONNECTIONS,
        durationSeconds: seconds,
      });
      const endRss = rssBytes(proxy.pids());
      return {
        body,
        loader: figures.loader,
        seconds,
        responses: figures.responses,
        requestsPerSecond: figures.requestsPerSecond,
        errors: figures.errors,
        non2xx: figures.non2xx,
        idleRss,
        peakRss: Math.max(peakRss, endRss),
        endRss,
      };
    } finally {
      clearInterval(sampler);
    }
  } finally {
    await proxy.stop();
    await upstream.process.stop();
  }
}

function largeBodyTable(runs: LargeBodyRun[]): string {
  if (runs.length === 0) return '';
  const rows = runs.map(
    (r) =>
      `| ${BODIES[r.body].label} | ${r.loader}, ${r.seconds} s | ${thousands(r.requestsPerSecond)} | ${megabytes(r.idleRss)} | **${megabytes(r.peakRss)}** | ${megabytes(r.endRss)} | ${r.errors + r.non2xx} |`,
  );
  return `
Large bodies, ${CONNECTIONS} connections, a fresh proxy each (node ${PROXY_NODE_FLAGS.join(' ')}), RSS sampled every ${RSS_SAMPLE_MS} ms (target: peak under 150 MB):

| body | load | req/s | idle | peak | at end | errors |
| --- | --- | --- | --- | --- | --- | --- |
${rows.join('\n')}
`;
}

interface RssSample {
  responses: number;
  /** s since the load started. */
  seconds: number;
  rss: number;
}

export const memoryScenario: Scenario = {
  name: 'memory',
  title: 'Memory',
  async run(context): Promise<ScenarioOutcome> {
    const { options, available } = context;
    if (available.proxyMissing !== undefined) return proxyUnavailable(available.proxyMissing);
    // autocannon needs at least one request per connection.
    const requests = Math.max(options.requests, CONNECTIONS);
    const upstream = await startUpstream('blue');
    const proxy = await startProxy({
      name: 'memory',
      blueUrl: upstream.url,
      greenUrl: upstream.url,
      nodeArgs: [...PROXY_NODE_FLAGS],
      cpuProfileDir: options.cpuProfileDir,
    });
    const samples: RssSample[] = [];
    let idle = 0;
    let afterIdle = 0;
    let load: LoadResult | undefined;
    try {
      await sleep(1_000);
      idle = rssBytes(proxy.pids());
      context.log(
        `memory: idle RSS ${megabytes(idle)}; ${thousands(requests)} requests at ${CONNECTIONS} connections`,
      );
      const started = performance.now();
      let nextLog = 0;
      load = await runLoad({
        url: `${proxy.url}${UPSTREAM_PATHS.small}`,
        connections: CONNECTIONS,
        amount: requests,
        onProgress: (responses) => {
          const seconds = (performance.now() - started) / 1000;
          samples.push({ responses, seconds, rss: rssBytes(proxy.pids()) });
          if (seconds >= nextLog) {
            nextLog += 15;
            context.log(
              `memory: ${thousands(responses)} responses, RSS ${megabytes(samples.at(-1)!.rss)}`,
            );
          }
        },
      });
      const end = rssBytes(proxy.pids());
      samples.push({
        responses: load.responses,
        seconds: (performance.now() - started) / 1000,
        rss: end,
      });
      await sleep(2_000);
      afterIdle = rssBytes(proxy.pids());
    } finally {
      await proxy.stop();
      await upstream.process.stop();
    }
    if (!load) throw new Error('memory: the load run did not finish');
    const largeBodies: LargeBodyRun[] = [];
    for (const body of options.bodies.filter((b) => b !== 'small')) {
      const run = await largeBodyRun(context, body);
      context.log(
        `memory: ${BODIES[body].label} at ${CONNECTIONS} connections: peak RSS ${megabytes(run.peakRss)} (${thousands(run.requestsPerSecond)} req/s)`,
      );
      largeBodies.push(run);
    }
    const settledAt = requests * SETTLED_FRACTION;
    const settled = samples.find((s) => s.responses >= settledAt) ?? samples[0];
    const end = samples.at(-1);
    const peak = Math.max(...samples.map((s) => s.rss));
    const growth = settled && end ? (end.rss - settled.rss) / settled.rss : Number.NaN;
    const figures = {
      requests: requests,
      responses: load.responses,
      errors: load.errors,
      non2xx: load.non2xx,
      requestsPerSecond: load.requestsPerSecond,
      idleRss: idle,
      peakRssUnderLoad: peak,
      rssAtSettled: settled?.rss ?? Number.NaN,
      settledResponses: settled?.responses ?? Number.NaN,
      rssAtEnd: end?.rss ?? Number.NaN,
      growthSettledToEnd: growth,
      idleRssAfterLoad: afterIdle,
    };
    const markdown = `Proxy process tree RSS from /proc, ${thousands(requests)} small-JSON requests over ${CONNECTIONS} connections (${thousands(load.requestsPerSecond)} req/s, ${load.errors} errors, ${load.non2xx} non-2xx). Growth is from the first sample at or after ${thousands(settledAt)} responses to the end. One system, so no rounds.

| idle | peak under ${CONNECTIONS} connections | at ${thousands(figures.settledResponses)} responses | at end (${thousands(load.responses)}) | growth | idle 2 s after the load |
| --- | --- | --- | --- | --- | --- |
| ${megabytes(idle)} | ${megabytes(peak)} | ${megabytes(figures.rssAtSettled)} | ${megabytes(figures.rssAtEnd)} | ${fixed(growth * 100, 1)} % | ${megabytes(afterIdle)} |
${largeBodyTable(largeBodies)}`;
    return { data: { figures, samples, largeBodies }, markdown, skipped: [] };
  },
};
