/**
 * `npm run soak -- --minutes 10`: a long run of the proxy under moderate load
 * (a fixed request rate), with a switch every few seconds, WebSocket clients
 * opening and closing, and Redis restarted (empty) in the middle. Reports
 * requests, errors (zero except the defined ones: switches refused with 503
 * while Redis is down, WebSockets closed with 1012 by the drain), and the
 * proxy's RSS and open file descriptors over time, and whether they stay
 * flat. Writes bench/results/soak.json and soak.md; exits 1 when an
 * unexpected error happened or a reading grew.
 */
import autocannon from 'autocannon';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { markdownTable } from './markdown.js';
import { processTree, rssBytes } from './proc.js';
import { RedisProcess } from '../harness/redis-process.js';
import { UpstreamProcess } from '../harness/upstream-process.js';
import { installCleanup, sleep, startProcess, stopAll } from './processes.js';
import { startProxy, type ProxyProcess } from './proxy-process.js';
import { machineInfo } from './report.js';
import { flatness, SETTLE_FRACTION, type Flatness, type SoakSample } from './soak-analysis.js';
import { startWebSocketLoad } from './soak-websockets.js';
import { fixed, megabytes, thousands } from './stats.js';
import { UPSTREAM_PATHS } from './upstream.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const UPSTREAM_SCRIPT = fileURLToPath(new URL('./soak-upstream.js', import.meta.url));

interface Flags {
  minutes: number;
  rate: number;
  connections: number;
  switchEvery: number;
  wsShort: number;
  wsLong: number;
  sampleEvery: number;
  redisOutage: number;
  results: string;
}

function positiveNumber(text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new InvalidArgumentError('must be above 0');
  return value;
}

function wholeNumber(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0)
    throw new InvalidArgumentError('must be a whole number');
  return value;
}

function parseFlags(argv: string[]): Flags {
  const program = new Command('soak')
    .description(
      'Long run of the proxy: steady load, a switch every few seconds, WebSocket clients, a Redis restart in the middle',
    )
    .option('--minutes <n>', 'length of the run', positiveNumber, 10)
    .option('--rate <n>', 'requests per second (moderate, not the maximum)', positiveNumber, 800)
    .option('--connections <n>', 'HTTP keep-alive connections', positiveNumber, 16)
    .option('--switch-every <seconds>', 'seconds between switches', positiveNumber, 10)
    .option('--ws-short <n>', 'clients of short WebSocket sessions', wholeNumber, 4)
    .option('--ws-long <n>', 'clients of WebSockets kept open across switches', wholeNumber, 2)
    .option(
      '--sample-every <seconds>',
      'seconds between RSS/descriptor readings',
      positiveNumber,
      5,
    )
    .option(
      '--redis-outage <seconds>',
      'how long Redis stays down in the middle',
      positiveNumber,
      5,
    )
    .addOption(
      new Option('--results <dir>', 'where results go').default(
        join(REPO_ROOT, 'bench', 'results'),
        'bench/results',
      ),
    )
    .exitOverride()
    .showHelpAfterError();
  program.parse(argv);
  return program.opts<Flags>();
}

function log(message: string): void {
  console.log(`[${new Date().toISOString().slice(11, 19)}] ${message}`);
}

/** Open file descriptors of a process tree (/proc/<pid>/fd). */
function openFds(rootPid: number): number {
  let count = 0;
  for (const pid of processTree(rootPid)) {
    try {
      count += readdirSync(`/proc/${pid}/fd`).length;
    } catch {
      // gone
    }
  }
  return count;
}

interface HttpCounts {
  responses: number;
  statusCodes: Record<string, number>;
  slots: Record<string, number>;
  errors: number;
  errorKinds: Record<string, number>;
}

/** autocannon at a fixed overall rate for the whole run, counting every answer and error. */
function startHttpLoad(url: string, flags: Flags, seconds: number) {
  const counts: HttpCounts = {
    responses: 0,
    statusCodes: {},
    slots: {},
    errors: 0,
    errorKinds: {},
  };
  const setupClient = (client: autocannon.Client) => {
    let slot = 'none';
    client.on('headers', (info: unknown) => {
      const raw = (info as { headers?: unknown }).headers;
      slot = 'none';
      if (!Array.isArray(raw)) return;
      for (let i = 0; i + 1 < raw.length; i += 2) {
        if (String(raw[i]).toLowerCase() === 'x-togather-slot') slot = String(raw[i + 1]);
      }
    });
    client.on('response', (status: number) => {
      counts.responses++;
      counts.statusCodes[status] = (counts.statusCodes[status] ?? 0) + 1;
      counts.slots[slot] = (counts.slots[slot] ?? 0) + 1;
    });
  };
  let finish: () => void = () => undefined;
  const done = new Promise<void>((r) => (finish = r));
  const instance = autocannon(
    {
      url,
      connections: flags.connections,
      overallRate: flags.rate,
      duration: seconds,
      timeout: 10,
      setupClient,
    },
    () => finish(),
  );
  instance.on('reqError', (error: unknown) => {
    counts.errors++;
    const kind =
      (error as { code?: string } | undefined)?.code ??
      (error instanceof Error ? error.message : String(error));
    counts.errorKinds[kind] = (counts.errorKinds[kind] ?? 0) + 1;
  });
  return {
    counts,
    done,
    stop() {
      instance.stop();
      return done;
    },
  };
}

interface SwitchLog {
  attempted: number;
  switched: number;
  /** 503 store_unavailable while Redis was down: defined. */
  refusedDuringOutage: number;
  /** Anything else that is not a 200. */
  unexpected: string[];
}

async function main(): Promise<number> {
  let flags: Flags;
  try {
    flags = parseFlags(process.argv);
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    throw error;
  }
  installCleanup();
  const seconds = Math.round(flags.minutes * 60);
  const machine = machineInfo({}, 'autocannon at a fixed rate');
  log(
    `soak: ${flags.minutes} min at ${flags.rate} requests/s over ${flags.connections} connections, a switch every ${flags.switchEvery} s, ${flags.wsShort}+${flags.wsLong} WebSocket clients, Redis down for ${flags.redisOutage} s in the middle`,
  );

  // Killed and started again on the same port, where the proxy expects it.
  const redis = await RedisProcess.start({ launch: startProcess });
  const slot = (name: string) =>
    UpstreamProcess.start(name, { script: UPSTREAM_SCRIPT, launch: startProcess });
  const [blue, green] = await Promise.all([slot('blue'), slot('green')]);
  let proxy: ProxyProcess;
  try {
    proxy = await startProxy({
      name: 'soak',
      blueUrl: blue.url,
      greenUrl: green.url,
      redisUrl: redis.url,
      redisKeyPrefix: `togather-soak-${process.pid}:`,
      drainTimeout: '5s',
    });
  } catch (error) {
    await stopAll();
    throw error;
  }
  const rootPid = proxy.process.pid;

  const startedAt = Date.now();
  const elapsed = () => (Date.now() - startedAt) / 1000;
  const http = startHttpLoad(`${proxy.url}${UPSTREAM_PATHS.small}`, flags, seconds);
  const websockets = startWebSocketLoad(proxy.url, flags.wsShort, flags.wsLong);

  const samples: SoakSample[] = [];
  const unexpectedNow = () =>
    http.counts.errors +
    unexpectedStatuses(http.counts) +
    websockets.counts.unexpected +
    switches.unexpected.length;
  let storeConnected: boolean | null = null;
  let heapUsed = Number.NaN;
  const sample = () => {
    samples.push({
      heapUsed,
      seconds: Math.round(elapsed() * 10) / 10,
      requests: http.counts.responses,
      unexpectedErrors: unexpectedNow(),
      rss: rssBytes(processTree(rootPid)),
      fds: openFds(rootPid),
      websocketsOpened: websockets.counts.opened,
      storeConnected,
    });
  };

  // Redis: down for a while in the middle of the run, then back empty.
  const outageAt = seconds / 2;
  let outage: { from: number; to: number } | undefined;
  let redisDown = false;
  const switches: SwitchLog = { attempted: 0, switched: 0, refusedDuringOutage: 0, unexpected: [] };

  let running = true;
  const switchLoop = (async () => {
    let target: 'blue' | 'green' = 'green';
    while (running) {
      await sleep(flags.switchEvery * 1000);
      if (!running) break;
      switches.attempted++;
      const downBefore = redisDown;
      try {
        const answer = await proxy.switchTo(target);
        // The outage is "defined" for the answers sent during it and just after (reconnect, restore grace).
        const inOutage =
          downBefore || redisDown || (outage !== undefined && elapsed() < outage.to + 10);
        if (answer.status === 200) {
          switches.switched++;
          target = target === 'blue' ? 'green' : 'blue';
        } else if (answer.status === 503 && inOutage) {
          switches.refusedDuringOutage++;
        } else {
          switches.unexpected.push(
            `${Math.round(elapsed())} s: ${answer.status} ${answer.text.slice(0, 200)}`,
          );
        }
      } catch (error) {
        switches.unexpected.push(`${Math.round(elapsed())} s: ${String(error)}`);
      }
    }
  })();

  const statusLoop = (async () => {
    while (running) {
      try {
        const status = await proxy.status();
        storeConnected = (status.store as { connected?: boolean } | undefined)?.connected ?? null;
      } catch {
        storeConnected = null;
      }
      heapUsed = await proxy.heapUsed();
      await sleep(1000);
    }
  })();

  const redisLoop = (async () => {
    while (running && elapsed() < outageAt) await sleep(200);
    if (!running) return;
    const from = elapsed();
    log(`Redis: killed at ${Math.round(from)} s`);
    redisDown = true;
    await redis.kill();
    await sleep(flags.redisOutage * 1000);
    await redis.restart();
    redisDown = false;
    outage = { from, to: elapsed() };
    log(`Redis: back (empty) at ${Math.round(outage.to)} s`);
  })();

  let lastLog = 0;
  while (elapsed() < seconds) {
    sample();
    if (elapsed() - lastLog >= 30) {
      lastLog = elapsed();
      const s = samples[samples.length - 1]!;
      log(
        `${Math.round(s.seconds)} s: ${thousands(s.requests)} responses, ${s.unexpectedErrors} unexpected errors, RSS ${megabytes(s.rss)}, ${s.fds} descriptors, store ${s.storeConnected === false ? 'down' : 'up'}`,
      );
    }
    await sleep(flags.sampleEvery * 1000);
  }
  running = false;
  await http.stop();
  await Promise.all([switchLoop, statusLoop, redisLoop, websockets.stop()]);
  // Read once more with the load gone (not part of the flatness: nothing is running then).
  sample();
  const afterLoad = samples.pop()!;
  const aliveAtEnd = proxy.process.running;
  await stopAll();

  const rss = flatness(samples, (s) => s.rss, 0.1, 8 * 1024 * 1024);
  const heap = flatness(samples, (s) => s.heapUsed, 0.1, 4 * 1024 * 1024, 'floor');
  const fds = flatness(samples, (s) => s.fds, 0, 10);
  const unexpected = unexpectedNow();
  const ok = unexpected === 0 && rss.flat && fds.flat && aliveAtEnd;
  const result = {
    finishedAt: new Date().toISOString(),
    machine,
    options: flags,
    outcome: ok ? 'pass' : 'fail',
    aliveAtEnd,
    http: http.counts,
    unexpectedStatuses: unexpectedStatuses(http.counts),
    switches,
    websockets: websockets.counts,
    redisOutage: outage,
    rss,
    heap,
    fds,
    samples,
    afterLoad,
  };
  mkdirSync(resolve(flags.results), { recursive: true });
  const jsonPath = join(resolve(flags.results), 'soak.json');
  writeFileSync(jsonPath, `${JSON.stringify(result, null, 2)}\n`);
  const mdPath = join(resolve(flags.results), 'soak.md');
  writeFileSync(mdPath, markdown(result));
  log(
    `${ok ? 'PASS' : 'FAIL'}: ${thousands(http.counts.responses)} responses, ${unexpected} unexpected errors; RSS ${megabytes(rss.early)} → ${megabytes(rss.late)} (${rss.flat ? 'flat' : 'grew'}), descriptors ${fixed(fds.early, 0)} → ${fixed(fds.late, 0)} (${fds.flat ? 'flat' : 'grew'})`,
  );
  log(`results: ${jsonPath}, ${mdPath}`);
  return ok ? 0 : 1;
}

/** Every HTTP answer through the proxy should be a 200 from a slot. */
function unexpectedStatuses(counts: HttpCounts): number {
  let n = 0;
  for (const [code, count] of Object.entries(counts.statusCodes)) if (code !== '200') n += count;
  return n;
}

interface SoakResult {
  finishedAt: string;
  machine: ReturnType<typeof machineInfo>;
  options: Flags;
  outcome: string;
  aliveAtEnd: boolean;
  http: HttpCounts;
  unexpectedStatuses: number;
  switches: SwitchLog;
  websockets: ReturnType<typeof startWebSocketLoad>['counts'];
  redisOutage: { from: number; to: number } | undefined;
  rss: Flatness;
  /** Reported, not judged: V8's used heap (between collections) of the proxy's main process. */
  heap: Flatness;
  fds: Flatness;
  samples: SoakSample[];
  afterLoad: SoakSample;
}

function markdown(r: SoakResult): string {
  const m = r.machine;
  const minute = (s: SoakSample) => `${fixed(s.seconds / 60, 1)}`;
  // One reading per minute or so keeps the table short.
  const step = Math.max(1, Math.round(60 / r.options.sampleEvery));
  const rows = r.samples
    .filter((_, i) => i % step === 0 || i === r.samples.length - 1)
    .map((s) => [
      minute(s),
      thousands(s.requests),
      String(s.unexpectedErrors),
      megabytes(s.rss),
      megabytes(s.heapUsed),
      String(s.fds),
      String(s.storeConnected ?? '?'),
    ]);
  const flat = (f: Flatness, unit: (v: number) => string) =>
    `${unit(f.early)} → ${unit(f.late)} (growth ${unit(f.growth)}, allowed ${unit(f.allowed)}, slope ${unit(f.slopePerMinute)}/min): **${f.flat ? 'flat' : 'grew'}**`;
  return `# Soak

${r.finishedAt}: **${r.outcome}**. ${r.options.minutes} min at ${r.options.rate} requests/s over ${r.options.connections} connections, a switch every ${r.options.switchEvery} s, ${r.options.wsShort} short + ${r.options.wsLong} long-lived WebSocket clients, Redis killed for ${r.options.redisOutage} s in the middle${r.redisOutage ? ` (${Math.round(r.redisOutage.from)}–${Math.round(r.redisOutage.to)} s)` : ''} and restarted empty. ${m.cpus} × ${m.cpuModel}, Node ${m.node}, commit ${m.gitCommit}.

- HTTP: ${thousands(r.http.responses)} responses (${Object.entries(r.http.slots)
    .map(([slot, n]) => `${slot} ${thousands(n)}`)
    .join(
      ', ',
    )}), status codes ${JSON.stringify(r.http.statusCodes)}, request errors ${r.http.errors}${r.http.errors ? ` ${JSON.stringify(r.http.errorKinds)}` : ''}.
- Switches: ${r.switches.attempted} attempted, ${r.switches.switched} done, ${r.switches.refusedDuringOutage} refused with 503 while Redis was down (defined), ${r.switches.unexpected.length} unexpected${r.switches.unexpected.length ? `: ${r.switches.unexpected.join('; ')}` : ''}.
- WebSockets: ${thousands(r.websockets.opened)} opened, ${thousands(r.websockets.completed)} short sessions completed, ${thousands(r.websockets.echoes)} echoes, ${r.websockets.drainClosed} closed with 1012 by the drain (defined), ${r.websockets.unexpected} unexpected${r.websockets.unexpected ? ` ${JSON.stringify(r.websockets.unexpectedKinds)}` : ''}.
- Proxy alive at the end: ${r.aliveAtEnd ? 'yes' : '**no**'}.
- RSS (proxy process tree, first ${SETTLE_FRACTION * 100} % left out, medians of the first and last quarter of the rest): ${flat(r.rss, megabytes)}.
- V8 heap used (the proxy's /metrics; lowest reading of the first and last quarter, since it saws with each collection; for reference): ${flat(r.heap, megabytes)}.
- Open file descriptors: ${flat(r.fds, (v) => fixed(v, 1))}.
- Once the load stopped: RSS ${megabytes(r.afterLoad.rss)}, ${r.afterLoad.fds} descriptors.

${markdownTable(['minute', 'responses', 'unexpected errors', 'RSS', 'heap used', 'descriptors', 'store up'], rows)}`;
}

main().then(
  (code) => process.exit(code),
  async (error: unknown) => {
    console.error(
      `soak failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
    );
    await stopAll();
    process.exit(1);
  },
);
