/**
 * The compression scenario: what answering compressed costs and saves. A
 * 16 KiB JSON page of events (compressible like the app's lists) from one
 * upstream, through the proxy with COMPRESSION off and on (the client
 * accepting gzip, then br) and through nginx with gzip off and on (level 1,
 * its default), over plain HTTP so TLS does not blur the figure; wrk,
 * systems alternating. Bytes per response are what the client received,
 * head and body.
 */
import { markdownTable } from '../markdown.js';
import { medianFigures, type MeasuredSystem, type RunFigures, compareSystems } from '../measure.js';
import { findWrk, wrkLoader } from '../loaders/wrk.js';
import type { LoadGenerator } from '../loaders/loader.js';
import { startNginx } from '../peers/nginx.js';
import { startProxy } from '../proxy-process.js';
import {
  nginxStatus,
  proxyUnavailable,
  wrkMissing,
  type Scenario,
  type ScenarioOutcome,
} from '../scenario.js';
import { fixed, thousands } from '../stats.js';
import { startUpstream } from '../upstream-process.js';
import { UPSTREAM_PATHS } from '../upstream.js';

function withEncoding(loader: LoadGenerator, encoding: string | undefined): LoadGenerator {
  if (encoding === undefined) return loader;
  return {
    ...loader,
    run: (run) => loader.run({ ...run, headers: { 'accept-encoding': encoding } }),
  };
}

export const compressionScenario: Scenario = {
  name: 'compression',
  title: 'Compression on and off: CPU per request and bytes saved, against nginx gzip',
  async run(context): Promise<ScenarioOutcome> {
    const { options } = context;
    if (context.available.proxyMissing !== undefined)
      return proxyUnavailable(context.available.proxyMissing);
    const wrk = findWrk();
    if (wrk.binary === undefined) return wrkMissing();
    const skipped: string[] = [];
    const nginx = nginxStatus(context.available);
    if (nginx.skip !== undefined) skipped.push(nginx.skip);
    const loader = wrkLoader(wrk.binary);
    const connections = options.connections[0] ?? 50;
    const seconds = loader.effectiveSeconds(options.durationSeconds);
    const upstream = await startUpstream('blue');
    const stops: (() => Promise<void>)[] = [async () => void (await upstream.process.stop())];
    const systems = new Map<string, MeasuredSystem>();
    let rounds = new Map<string, RunFigures[]>();
    try {
      const plain = await startProxy({
        name: 'compression-off',
        blueUrl: upstream.url,
        greenUrl: upstream.url,
        env: { COMPRESSION: 'off' },
      });
      stops.push(plain.stop);
      const compressing = await startProxy({
        name: 'compression-on',
        blueUrl: upstream.url,
        greenUrl: upstream.url,
        env: { COMPRESSION: 'on' },
      });
      stops.push(compressing.stop);
      systems.set('proxy, off', {
        target: { name: 'proxy, off', url: plain.url, pids: plain.pids },
        loader: withEncoding(loader, 'gzip, br'),
      });
      systems.set('proxy, gzip', {
        target: { name: 'proxy, gzip', url: compressing.url, pids: compressing.pids },
        loader: withEncoding(loader, 'gzip'),
      });
      systems.set('proxy, br', {
        target: { name: 'proxy, br', url: compressing.url, pids: compressing.pids },
        loader: withEncoding(loader, 'br'),
      });
      if (nginx.binary !== undefined) {
        const off = await startNginx({ upstreamPort: upstream.port, binary: nginx.binary });
        stops.push(off.stop);
        const on = await startNginx({
          upstreamPort: upstream.port,
          binary: nginx.binary,
          gzip: true,
        });
        stops.push(on.stop);
        systems.set('nginx, off', {
          target: { name: 'nginx, off', url: off.url, pids: off.pids },
          loader: withEncoding(loader, 'gzip'),
        });
        systems.set('nginx, gzip', {
          target: { name: 'nginx, gzip', url: on.url, pids: on.pids },
          loader: withEncoding(loader, 'gzip'),
        });
      }
      context.log('compression: warm-up');
      rounds = await compareSystems({
        systems: [...systems.values()],
        path: UPSTREAM_PATHS.events,
        connections,
        seconds,
        upstreamPid: upstream.process.pid,
        options,
        onRun: (name, round, figures) =>
          context.log(
            `compression: round ${round}, ${name}: ${thousands(figures.requestsPerSecond)} req/s, CPU ${fixed(figures.cpuPer10k)} s/10k, ${fixed((figures.bytes ?? Number.NaN) / Math.max(1, figures.responses), 0)} B/response`,
          ),
      });
    } finally {
      for (const stop of stops.reverse()) await stop();
    }
    const medians = [...rounds].map(([name, list]) => [name, medianFigures(list)] as const);
    const table = markdownTable(
      ['system', 'req/s', 'p99 ms', 'CPU s/10k req', 'bytes per response', 'errors'],
      medians.map(([name, m]) => [
        name,
        thousands(m.requestsPerSecond),
        fixed(m.p99),
        fixed(m.cpuPer10k),
        thousands((m.bytes ?? Number.NaN) / Math.max(1, m.responses)),
        String(m.errors + m.non2xx),
      ]),
    );
    return {
      data: { connections, seconds, medians: Object.fromEntries(medians) },
      markdown: `A 16 KiB JSON page (\`${UPSTREAM_PATHS.events}\`, Content-Length), ${connections} connections, plain HTTP, wrk, median of ${options.rounds} round(s) of ${seconds} s, systems alternating; "off" runs send \`Accept-Encoding\` too, so only the setting differs.\n\n${table}\n`,
      skipped,
      finalReport: `Compression:\n${medians.map(([n, m]) => `${n}: ${thousands(m.requestsPerSecond)} req/s, CPU ${fixed(m.cpuPer10k)} s/10k, ${thousands((m.bytes ?? Number.NaN) / Math.max(1, m.responses))} B/response`).join('\n')}`,
    };
  },
};
