/**
 * Scenario 5, multi-core: our proxy with PROXY_WORKERS=1 and 2 against nginx
 * with 1 and 2 worker processes, small JSON. The proxy's process tree is
 * inspected to say whether PROXY_WORKERS really started N workers.
 */
import { markdownTable } from '../markdown.js';
import { medianFigures, type RunFigures, type Target, compareSystems } from '../measure.js';
import { startNginx } from '../peers/nginx.js';
import { processNames } from '../proc.js';
import { startProxy } from '../proxy-process.js';
import { nginxStatus, type Scenario, type ScenarioOutcome } from '../scenario.js';
import { fixed, ratio, thousands } from '../stats.js';
import { startUpstream } from '../upstream-process.js';
import { bodyPath } from '../upstream.js';

const WORKER_COUNTS = [1, 2] as const;

interface WorkerCheck {
  system: string;
  requested: number;
  /** Processes in the proxy's tree (the primary plus its workers). */
  processes: number;
  processNames: string[];
  /** What /admin/status says about workers, if it says anything. */
  statusWorkers: unknown;
  verdict: string;
}

export const multicoreScenario: Scenario = {
  name: 'multicore',
  title: 'Multi-core',
  async run(context): Promise<ScenarioOutcome> {
    const { options, available, loader } = context;
    const skipped: string[] = [];
    const connections = options.connections[0]!;
    const framing = options.framings[0] ?? 'chunked';
    const nginx = nginxStatus(available);
    const upstream = await startUpstream('blue');
    const targets: Target[] = [];
    const stops: (() => Promise<void>)[] = [];
    const checks: WorkerCheck[] = [];
    let rounds: Map<string, RunFigures[]>;
    try {
      if (available.proxyMissing === undefined) {
        for (const workers of WORKER_COUNTS) {
          const proxy = await startProxy({
            name: `workers-${workers}`,
            blueUrl: upstream.url,
            greenUrl: upstream.url,
            workers,
            cpuProfileDir: options.cpuProfileDir,
          });
          stops.push(proxy.stop);
          const system = `proxy ${workers}w`;
          targets.push({ name: system, url: proxy.url, pids: proxy.pids });
          const pids = proxy.pids();
          const status = await proxy.status();
          const statusWorkers = status.workers;
          // Cluster mode: one primary plus N workers; without it, one process.
          const expected = workers === 1 ? [1, 2] : [workers + 1];
          checks.push({
            system,
            requested: workers,
            processes: pids.length,
            processNames: processNames(pids),
            statusWorkers,
            verdict: expected.includes(pids.length)
              ? 'runs as requested'
              : `PROXY_WORKERS=${workers} ignored: ${pids.length} process(es)`,
          });
        }
      } else skipped.push(`proxy: ${available.proxyMissing}`);
      if (nginx.binary !== undefined) {
        for (const workers of WORKER_COUNTS) {
          const peer = await startNginx({
            upstreamPort: upstream.port,
            workers,
            binary: nginx.binary,
          });
          stops.push(peer.stop);
          targets.push({ name: `nginx ${workers}w`, url: peer.url, pids: peer.pids });
        }
      } else skipped.push(nginx.skip);
      context.log(`multicore: warm-up`);
      rounds = await compareSystems({
        systems: targets.map((target) => ({ target, loader })),
        path: bodyPath('small', framing),
        connections,
        seconds: loader.effectiveSeconds(options.durationSeconds),
        upstreamPid: upstream.process.pid,
        options,
        onRun: (name, round, figures) =>
          context.log(
            `multicore: round ${round}, ${name}: ${thousands(figures.requestsPerSecond)} req/s`,
          ),
      });
    } finally {
      for (const stop of stops) await stop();
      await upstream.process.stop();
    }
    const medians = Object.fromEntries(
      [...rounds].map(([name, list]) => [name, medianFigures(list)]),
    );
    const rows = Object.entries(medians).map(([system, m]) => [
      system,
      thousands(m.requestsPerSecond),
      fixed(m.p50),
      fixed(m.p99),
      fixed(m.cpuPer10k),
      String(m.errors + m.non2xx),
      fixed(m.loadgenCpuPercent, 0),
    ]);
    const scaling = (name: string) =>
      ratio(medians[`${name} 2w`]?.requestsPerSecond, medians[`${name} 1w`]?.requestsPerSecond);
    const workerLines = checks.map(
      (c) =>
        `- ${c.system}: ${c.processes} process(es) (${c.processNames.join(', ')}); /admin/status \`workers\`: ${c.statusWorkers === undefined ? 'absent' : JSON.stringify(c.statusWorkers)}; ${c.verdict}.`,
    );
    const markdown = `Small JSON (${framing === 'chunked' ? 'chunked' : 'Content-Length'}), ${connections} connections, ${loader.name}, median of ${options.rounds} round(s) of ${loader.effectiveSeconds(options.durationSeconds)} s, systems alternating. Everything shares the machine's cores with the load generator and the one upstream process, so 2 workers cannot double anything here.

${markdownTable(['system', 'req/s', 'p50 ms', 'p99 ms', 'CPU s/10k req', 'errors + non-2xx', 'load-gen CPU %'], rows)}

Scaling 2 workers / 1 worker: proxy **${fixed(scaling('proxy'))}**, nginx **${fixed(scaling('nginx'))}**. Proxy 2w / nginx 2w: **${fixed(ratio(medians['proxy 2w']?.requestsPerSecond, medians['nginx 2w']?.requestsPerSecond))}**.

${workerLines.join('\n')}
`;
    return { data: { checks, rounds: Object.fromEntries(rounds), medians }, markdown, skipped };
  },
};
