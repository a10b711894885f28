/**
 * Scenario 1, steady throughput, latency and CPU: the same upstream reached
 * directly, through our proxy and through each peer (nginx, HAProxy, Caddy;
 * one worker or thread each), for each body in each framing at each
 * connection count, systems alternating within each round.
 */
import { compareToBaseline, comparisonTable, type ComparisonRow } from '../comparison.js';
import { markdownTable } from '../markdown.js';
import {
  flagged,
  medianFigures,
  type RunFigures,
  type Target,
  compareSystems,
} from '../measure.js';
import { startProxy } from '../proxy-process.js';
import type { Scenario, ScenarioContext, ScenarioOutcome } from '../scenario.js';
import { fixed, megabytes, thousands } from '../stats.js';
import { startUpstream, type UpstreamProcess } from '../upstream-process.js';
import { BODIES, bodyPath, type BodyName, type Framing } from '../upstream.js';

/** The system every other is compared with. */
const BASELINE = 'nginx';

interface CaseResult {
  body: BodyName;
  framing: Framing;
  connections: number;
  label: string;
  rounds: Record<string, RunFigures[]>;
  medians: Record<string, RunFigures>;
  comparison: ComparisonRow[];
}

export function caseLabel(body: BodyName, framing: Framing, connections: number): string {
  const frame = framing === 'chunked' ? 'chunked' : 'Content-Length';
  return `${BODIES[body].label}, ${frame}, ${connections} connections`;
}

async function startTargets(
  context: ScenarioContext,
  upstream: UpstreamProcess,
  skipped: string[],
): Promise<{ targets: Target[]; stop: () => Promise<void> }> {
  const targets: Target[] = [{ name: 'direct', url: upstream.url }];
  const stops: (() => Promise<void>)[] = [];
  const stop = async () => void (await Promise.all(stops.map((s) => s())));
  try {
    if (context.available.proxyMissing === undefined) {
      const proxy = await startProxy({
        name: 'steady',
        blueUrl: upstream.url,
        greenUrl: upstream.url,
        cpuProfileDir: context.options.cpuProfileDir,
      });
      targets.push({ name: 'proxy', url: proxy.url, pids: proxy.pids });
      stops.push(proxy.stop);
    } else skipped.push(`proxy: ${context.available.proxyMissing}`);
    for (const status of context.available.peers) {
      if (!status.available) {
        skipped.push(status.skip);
        continue;
      }
      try {
        const peer = await status.peer.start({
          upstreamPort: upstream.port,
          workers: 1,
          binary: status.binary,
        });
        targets.push({ name: status.peer.name, url: peer.url, pids: peer.pids });
        stops.push(peer.stop);
      } catch (error) {
        // A peer that is installed but will not start is skipped like a missing one.
        const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
        skipped.push(`${status.peer.name}: did not start (${reason}); skipped`);
        context.log(`steady: ${status.peer.name} did not start: ${String(error)}`);
      }
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { targets, stop };
}

function errorsText(m: RunFigures): string {
  if (!flagged(m)) return '0';
  const kinds = Object.entries(m.errorKinds).map(([kind, n]) => `${kind} ${n}`);
  return `${m.errors} ⚠ ${kinds.join(', ')}`.trim();
}

function detailTable(result: CaseResult): string {
  const rows = Object.entries(result.medians).map(([system, m]) => [
    system,
    thousands(m.requestsPerSecond),
    fixed(m.p50),
    fixed(m.p99),
    fixed(m.p999),
    fixed(m.max),
    fixed(m.cpuPer10k),
    fixed(m.upstreamCpuPer10k),
    megabytes(m.rssBytes),
    errorsText(m),
    String(m.non2xx),
    fixed(m.loadgenCpuPercent, 0),
  ]);
  return markdownTable(
    [
      'system',
      'req/s',
      'p50 ms',
      'p99 ms',
      'p99.9 ms',
      'max ms',
      'CPU s/10k req',
      'upstream CPU s/10k',
      'RSS at end',
      'socket errors',
      'non-2xx',
      'load-gen CPU %',
    ],
    rows,
  );
}

function caseMarkdown(result: CaseResult): string {
  return `#### ${result.label}

${comparisonTable(result.comparison, BASELINE)}

Medians of every figure:

${detailTable(result)}
`;
}

export const steadyScenario: Scenario = {
  name: 'steady',
  title: 'Steady throughput, latency and CPU against nginx, HAProxy and Caddy',
  async run(context): Promise<ScenarioOutcome> {
    const { options, loader } = context;
    const seconds = loader.effectiveSeconds(options.durationSeconds);
    const skipped: string[] = [];
    const upstream = await startUpstream('blue');
    const cases: CaseResult[] = [];
    let targets: Target[] = [];
    let stop = async () => {};
    try {
      ({ targets, stop } = await startTargets(context, upstream, skipped));
      for (const line of skipped) context.log(line);
      for (const body of options.bodies) {
        for (const framing of options.framings) {
          for (const connections of options.connections) {
            const label = caseLabel(body, framing, connections);
            const path = bodyPath(body, framing);
            context.log(`steady: ${label}: warm-up`);
            const rounds = await compareSystems({
              systems: targets.map((target) => ({ target, loader })),
              path,
              connections,
              seconds,
              upstreamPid: upstream.process.pid,
              options,
              onRun: (name, round, figures) => {
                const errors = flagged(figures)
                  ? ` ⚠ ${figures.errors} socket errors ${JSON.stringify(figures.errorKinds)}, ${figures.non2xx} non-2xx`
                  : '';
                context.log(
                  `steady: ${label}, round ${round}, ${name}: ${thousands(figures.requestsPerSecond)} req/s, p99 ${fixed(figures.p99)} ms, CPU ${fixed(figures.cpuPer10k)} s/10k${errors}`,
                );
              },
            });
            cases.push({
              body,
              framing,
              connections,
              label,
              rounds: Object.fromEntries(rounds),
              medians: Object.fromEntries(
                [...rounds].map(([name, list]) => [name, medianFigures(list)]),
              ),
              comparison: compareToBaseline(rounds, BASELINE),
            });
          }
        }
      }
    } finally {
      await stop();
      await upstream.process.stop();
    }
    const intro = `Load generator: ${loader.name}${loader.name === 'wrk' ? ' (-t1, its own process)' : ' (in the bench process)'}. Each figure is the median of ${options.rounds} round(s) of ${seconds} s per system, systems alternating within each round (direct, proxy, then the peers), the range over rounds in parentheses; "× ${BASELINE}" is taken round by round against the ${BASELINE} run of the same round. CPU is user + system seconds from /proc of the system's own processes (nginx: master + workers) per 10,000 responses over the measured run; RSS is theirs at the end of the run. A ⚠ marks a system with socket errors or non-2xx answers${loader.name === 'wrk' ? ' (wrk counts status ≥ 400)' : ''}: its figures are not comparable. Load-gen CPU near 100 % means the load generator, not the system, was the limit.`;
    const markdown = `${intro}

${cases.map(caseMarkdown).join('\n')}`;
    const finalReport = cases
      .map((c) => `${c.label}\n\n${comparisonTable(c.comparison, BASELINE)}\n`)
      .join('\n');
    return {
      data: { loader: loader.name, cases },
      markdown,
      skipped,
      finalReport: cases.length > 0 ? `Steady (${loader.name}):\n\n${finalReport}` : undefined,
    };
  },
};
