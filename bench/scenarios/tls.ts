/**
 * The TLS scenario: the proxy's TLS listener against nginx with TLS on the
 * same certificate (ECDSA P-256, TLS 1.2+), small JSON from the same upstream:
 * keep-alive HTTPS over HTTP/1.1 (wrk) and HTTP/2 (h2load, one stream per
 * connection), new-connection handshakes per second (wrk with
 * `Connection: close`: every request opens a connection and does a full
 * handshake, session resumption being off on nginx and unused by wrk), systems
 * alternating; then a cutover under HTTPS load on the proxy, switching slots
 * every --switch-interval, over HTTP/1.1 and HTTP/2, counting failed requests.
 */
import { compareToBaseline, comparisonTable, type ComparisonRow } from '../comparison.js';
import { H2LOAD_INSTALL_HINT, findH2load, runH2load } from '../loaders/h2load.js';
import type { LoadFigures, LoadGenerator } from '../loaders/loader.js';
import { findWrk, wrkLoader } from '../loaders/wrk.js';
import { markdownTable } from '../markdown.js';
import { medianFigures, type RunFigures, type Target, compareSystems } from '../measure.js';
import { startNginx } from '../peers/nginx.js';
import { startProxy, type ProxyProcess } from '../proxy-process.js';
import { sleep } from '../processes.js';
import {
  nginxStatus,
  proxyUnavailable,
  wrkMissing,
  type Scenario,
  type ScenarioOutcome,
} from '../scenario.js';
import { fixed, thousands } from '../stats.js';
import { selfSignedCertificate } from '../tls-certificate.js';
import { startUpstream } from '../upstream-process.js';
import { bodyPath } from '../upstream.js';

const BASELINE = 'nginx';

interface TlsCase {
  label: string;
  loader: LoadGenerator;
}

interface CaseResult {
  label: string;
  medians: Record<string, RunFigures>;
  comparison: ComparisonRow[];
}

interface CutoverResult {
  protocol: string;
  seconds: number;
  switchesOk: number;
  switchesTried: number;
  responses: number;
  errors: number;
  errorKinds: Record<string, number>;
  non2xx: number;
  requestsPerSecond: number;
}

function h2loadGenerator(binary: string): LoadGenerator {
  return {
    name: 'h2load',
    effectiveSeconds: (s) => Math.max(1, Math.ceil(s)),
    run: (run) => runH2load(binary, run),
  };
}

/** The same generator with headers added to every request. */
function withHeaders(loader: LoadGenerator, headers: Record<string, string>): LoadGenerator {
  return {
    ...loader,
    run: (run) => loader.run({ ...run, headers: { ...run.headers, ...headers } }),
  };
}

/** Load on the proxy for `seconds` while its slots are switched back and forth. */
async function cutoverUnderLoad(
  proxy: ProxyProcess,
  url: string,
  protocol: string,
  loader: LoadGenerator,
  connections: number,
  seconds: number,
  intervalMs: number,
): Promise<CutoverResult> {
  let loading = true;
  const load = loader.run({ url, connections, durationSeconds: seconds }).finally(() => {
    loading = false;
  });
  let tried = 0;
  let ok = 0;
  let slot: 'blue' | 'green' = 'green';
  // The first switch waits a second so the run is at full load.
  await sleep(1000);
  while (loading) {
    tried++;
    const answer = await proxy.switchTo(slot).catch(() => undefined);
    if (answer?.status === 200) ok++;
    slot = slot === 'green' ? 'blue' : 'green';
    await sleep(intervalMs);
  }
  const figures: LoadFigures = await load;
  return {
    protocol,
    seconds,
    switchesOk: ok,
    switchesTried: tried,
    responses: figures.responses,
    errors: figures.errors,
    errorKinds: figures.errorKinds,
    non2xx: figures.non2xx,
    requestsPerSecond: figures.requestsPerSecond,
  };
}

function cutoverTable(results: CutoverResult[]): string {
  return markdownTable(
    ['protocol', 'seconds', 'switches ok', 'responses', 'req/s', 'failed requests', 'non-2xx'],
    results.map((r) => [
      r.protocol,
      String(r.seconds),
      `${r.switchesOk} / ${r.switchesTried}`,
      thousands(r.responses),
      thousands(r.requestsPerSecond),
      r.errors === 0
        ? '0'
        : `${r.errors} ⚠ ${Object.entries(r.errorKinds)
            .map(([k, n]) => `${k} ${n}`)
            .join(', ')}`,
      String(r.non2xx),
    ]),
  );
}

export const tlsScenario: Scenario = {
  name: 'tls',
  title: 'HTTPS (HTTP/1.1 and HTTP/2), handshakes and cutover under HTTPS load, against nginx',
  async run(context): Promise<ScenarioOutcome> {
    const { options } = context;
    const skipped: string[] = [];
    if (context.available.proxyMissing !== undefined)
      return proxyUnavailable(context.available.proxyMissing);
    const wrk = findWrk();
    if (wrk.binary === undefined) return wrkMissing();
    const h2load = findH2load();
    if (h2load === undefined)
      skipped.push(`h2load: not installed (${H2LOAD_INSTALL_HINT}); HTTP/2 runs skipped`);
    const nginx = nginxStatus(context.available);
    if (nginx.skip !== undefined) skipped.push(nginx.skip);

    const keepAlive = wrkLoader(wrk.binary);
    const cases: TlsCase[] = [
      { label: 'HTTPS keep-alive, HTTP/1.1 (wrk)', loader: keepAlive },
      ...(h2load
        ? [{ label: 'HTTPS keep-alive, HTTP/2 (h2load -m1)', loader: h2loadGenerator(h2load) }]
        : []),
      {
        label: 'a new TLS connection per request: handshakes/s (wrk, Connection: close)',
        loader: withHeaders(keepAlive, { connection: 'close' }),
      },
    ];
    const certificate = selfSignedCertificate();
    const upstream = await startUpstream('blue');
    const stops: (() => Promise<void>)[] = [async () => void (await upstream.process.stop())];
    const results: CaseResult[] = [];
    const cutovers: CutoverResult[] = [];
    const connections = options.connections[0] ?? 50;
    const seconds = keepAlive.effectiveSeconds(options.durationSeconds);
    const path = bodyPath('small', 'chunked');
    try {
      let proxy: ProxyProcess;
      try {
        proxy = await startProxy({
          name: 'tls',
          blueUrl: upstream.url,
          greenUrl: upstream.url,
          tls: certificate,
          cpuProfileDir: options.cpuProfileDir,
        });
      } catch (error) {
        const reason = (error instanceof Error ? error.message : String(error)).split('\n')[0];
        return {
          data: {},
          markdown: `Not run: the proxy did not serve TLS (${reason}).\n`,
          skipped: [...skipped, `proxy: no TLS listener (${reason})`],
        };
      }
      stops.push(proxy.stop);
      const targets: Target[] = [{ name: 'proxy', url: proxy.tlsUrl!, pids: proxy.pids }];
      if (nginx.binary !== undefined) {
        const peer = await startNginx({
          upstreamPort: upstream.port,
          binary: nginx.binary,
          tls: certificate,
        });
        stops.push(peer.stop);
        targets.push({ name: 'nginx', url: peer.tlsUrl!, pids: peer.pids });
      }
      for (const c of cases) {
        context.log(`tls: ${c.label}: warm-up`);
        const rounds = await compareSystems({
          systems: targets.map((target) => ({ target, loader: c.loader })),
          path,
          connections,
          seconds,
          upstreamPid: upstream.process.pid,
          options,
          onRun: (name, round, figures) =>
            context.log(
              `tls: ${c.label}, round ${round}, ${name}: ${thousands(figures.requestsPerSecond)} req/s, CPU ${fixed(figures.cpuPer10k)} s/10k, errors ${figures.errors}`,
            ),
        });
        results.push({
          label: c.label,
          medians: Object.fromEntries([...rounds].map(([n, list]) => [n, medianFigures(list)])),
          comparison: compareToBaseline(rounds, BASELINE),
        });
      }
      const cutoverSeconds = Math.max(5, Math.min(options.cutoverSeconds, 20));
      const url = `${proxy.tlsUrl!}${path}`;
      context.log(`tls: cutover under HTTPS load, HTTP/1.1, ${cutoverSeconds} s`);
      cutovers.push(
        await cutoverUnderLoad(
          proxy,
          url,
          'HTTP/1.1 (wrk)',
          keepAlive,
          connections,
          cutoverSeconds,
          options.switchIntervalMs,
        ),
      );
      if (h2load) {
        context.log(`tls: cutover under HTTPS load, HTTP/2, ${cutoverSeconds} s`);
        cutovers.push(
          await cutoverUnderLoad(
            proxy,
            url,
            'HTTP/2 (h2load)',
            h2loadGenerator(h2load),
            connections,
            cutoverSeconds,
            options.switchIntervalMs,
          ),
        );
      }
    } finally {
      for (const stop of stops.reverse()) await stop();
    }
    const sections = results.map(
      (r) => `#### ${r.label}\n\n${comparisonTable(r.comparison, BASELINE)}\n`,
    );
    const markdown = `Small JSON (chunked upstream), ${connections} connections, median of ${options.rounds} round(s) of ${seconds} s, systems alternating; one self-signed ECDSA P-256 certificate for both, TLS 1.2+, nginx with \`ssl_session_cache off\` and \`ssl_session_tickets off\`. h2load reports no percentiles: its p99 columns are empty.

${sections.join('\n')}
#### Cutover under HTTPS load (the proxy, a switch every ${options.switchIntervalMs} ms)

${cutovers.length > 0 ? cutoverTable(cutovers) : 'Not run.'}
`;
    const headline = results
      .map((r) => {
        const row = r.comparison.find((c) => c.system === 'proxy');
        return row
          ? `${r.label}: proxy ${thousands(row.requestsPerSecond.median)} req/s, ${fixed(row.requestsRatio.median)} × nginx`
          : '';
      })
      .filter(Boolean)
      .join('\n');
    return {
      data: { connections, seconds, results, cutovers },
      markdown,
      skipped,
      finalReport: `TLS:\n${headline}\n${cutovers.map((c) => `cutover ${c.protocol}: ${c.switchesOk} switches, ${c.errors} failed requests, ${c.non2xx} non-2xx`).join('\n')}`,
    };
  },
};
