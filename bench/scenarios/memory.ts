/**
 * Scenario 4, memory: the proxy's resident set (process tree) idle, under 256
 * connections, and across a long run, with the growth from 20 % of the
 * requests (200k of 1M) to the end: a leak shows as steady growth there.
 *
 * The load stays autocannon whatever --loader says: the run stops after a
 * number of requests and samples RSS against the response count as it goes;
 * wrk only runs for a duration and reports at the end.
 */
import { performance } from 'node:perf_hooks';
import { runLoad, type LoadResult } from '../load.js';
import { startProxy } from '../proxy-process.js';
import { rssBytes } from '../proc.js';
import { sleep } from '../processes.js';
import { proxyUnavailable, type Scenario, type ScenarioOutcome } from '../scenario.js';
import { fixed, megabytes, thousands } from '../stats.js';
import { startUpstream } from '../upstream-process.js';
import { UPSTREAM_PATHS } from '../upstream.js';

const CONNECTIONS = 256;
/** Where growth is measured from: the JIT, pools and buffers have settled by then. */
const SETTLED_FRACTION = 0.2;

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
`;
    return { data: { figures, samples }, markdown, skipped: [] };
  },
};
