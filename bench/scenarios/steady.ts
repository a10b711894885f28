/**
 * Scenario 1, steady throughput and latency: the same upstream reached
 * directly, through our proxy and through nginx (one worker each), for a small
 * JSON and a 64 KiB response at each connection count.
 */
import { markdownTable } from '../markdown.js';
import {
  measureRun,
  medianFigures,
  warmupSeconds,
  type RunFigures,
  type Target,
} from '../measure.js';
import { NGINX_INSTALL_HINT, startNginx } from '../nginx.js';
import { startProxy } from '../proxy-process.js';
import { alternate } from '../rounds.js';
import type { Scenario, ScenarioContext, ScenarioOutcome } from '../scenario.js';
import { fixed, ratio, thousands } from '../stats.js';
import { startUpstream, type UpstreamProcess } from '../upstream-process.js';
import { UPSTREAM_PATHS } from '../upstream.js';

const SIZES = [
  { name: 'small JSON', path: UPSTREAM_PATHS.small },
  { name: '64 KiB', path: UPSTREAM_PATHS.large },
] as const;

interface CaseResult {
  size: string;
  connections: number;
  rounds: Record<string, RunFigures[]>;
  medians: Record<string, RunFigures>;
  ratios: { proxyOverNginx: number; proxyOverDirect: number; p99ProxyOverNginx: number };
}

async function startTargets(
  context: ScenarioContext,
  upstream: UpstreamProcess,
  skipped: string[],
): Promise<{ targets: Target[]; stop: () => Promise<void> }> {
  const targets: Target[] = [{ name: 'direct', url: upstream.url }];
  const stops: (() => Promise<void>)[] = [];
  if (context.available.proxyMissing === undefined) {
    const proxy = await startProxy({
      name: 'steady',
      blueUrl: upstream.url,
      greenUrl: upstream.url,
      cpuProfileDir: context.options.cpuProfileDir,
    });
    targets.push({ name: 'proxy', url: proxy.url, rootPid: proxy.process.pid });
    stops.push(proxy.stop);
  } else skipped.push(`proxy: ${context.available.proxyMissing}`);
  if (context.available.nginx !== undefined) {
    const nginx = await startNginx(upstream.port, 1);
    targets.push({
      name: 'nginx',
      url: `http://127.0.0.1:${nginx.port}`,
      rootPid: nginx.process.pid,
    });
    stops.push(nginx.stop);
  } else skipped.push(`nginx: not installed (${NGINX_INSTALL_HINT})`);
  return { targets, stop: async () => void (await Promise.all(stops.map((stop) => stop()))) };
}

function caseMarkdown(result: CaseResult): string {
  const rows = Object.entries(result.medians).map(([system, m]) => [
    system,
    thousands(m.requestsPerSecond),
    fixed(m.p50),
    fixed(m.p99),
    fixed(m.p999),
    fixed(m.cpuPer10k),
    fixed(m.upstreamCpuPer10k),
    String(m.errors),
    String(m.non2xx),
    fixed(m.loadgenCpuPercent, 0),
  ]);
  const table = markdownTable(
    [
      'system',
      'req/s',
      'p50 ms',
      'p99 ms',
      'p99.9 ms',
      'CPU s/10k req',
      'upstream CPU s/10k',
      'errors',
      'non-2xx',
      'load-gen CPU %',
    ],
    rows,
  );
  const r = result.ratios;
  return `#### ${result.size}, ${result.connections} connections

${table}

Ratios (medians): throughput proxy/nginx **${fixed(r.proxyOverNginx)}**, proxy/direct **${fixed(r.proxyOverDirect)}**; p99 proxy/nginx **${fixed(r.p99ProxyOverNginx)}**.
`;
}

export const steadyScenario: Scenario = {
  name: 'steady',
  title: 'Steady throughput and latency',
  async run(context): Promise<ScenarioOutcome> {
    const { options } = context;
    const skipped: string[] = [];
    const upstream = await startUpstream('blue');
    const { targets, stop } = await startTargets(context, upstream, skipped);
    const cases: CaseResult[] = [];
    try {
      for (const size of SIZES) {
        for (const connections of options.connections) {
          context.log(`steady: ${size.name}, ${connections} connections: warm-up`);
          const warmup = warmupSeconds(options.durationSeconds);
          for (const target of targets)
            await measureRun(target, size.path, connections, warmup, upstream.process.pid);
          const byTarget = new Map(targets.map((t) => [t.name, t]));
          const rounds = await alternate(
            targets.map((t) => t.name),
            options.rounds,
            async (name, round) => {
              const figures = await measureRun(
                byTarget.get(name)!,
                size.path,
                connections,
                options.durationSeconds,
                upstream.process.pid,
              );
              context.log(
                `steady: ${size.name}, ${connections} conns, round ${round}, ${name}: ${thousands(figures.requestsPerSecond)} req/s, p99 ${fixed(figures.p99)} ms`,
              );
              return figures;
            },
          );
          const medians = Object.fromEntries(
            [...rounds].map(([name, list]) => [name, medianFigures(list)]),
          );
          cases.push({
            size: size.name,
            connections,
            rounds: Object.fromEntries(rounds),
            medians,
            ratios: {
              proxyOverNginx: ratio(
                medians.proxy?.requestsPerSecond,
                medians.nginx?.requestsPerSecond,
              ),
              proxyOverDirect: ratio(
                medians.proxy?.requestsPerSecond,
                medians.direct?.requestsPerSecond,
              ),
              p99ProxyOverNginx: ratio(medians.proxy?.p99, medians.nginx?.p99),
            },
          });
        }
      }
    } finally {
      await stop();
      await upstream.process.stop();
    }
    const markdown = `Each row is the median of ${options.rounds} round(s) of ${options.durationSeconds} s per system, systems alternating within each round. CPU columns are user+system seconds from /proc per 10,000 responses (nginx: master + workers). Load-gen CPU near 100 % means autocannon, not the system, was the limit.

${cases.map(caseMarkdown).join('\n')}`;
    return { data: { cases }, markdown, skipped };
  },
};
