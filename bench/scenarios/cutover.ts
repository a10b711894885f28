/**
 * Scenario 2, cutover under load: load runs while the active slot flips every
 * switch interval. Our proxy switches through its admin API; nginx the way the
 * old setup did (rewrite the upstream, `nginx -s reload`). Counts errors,
 * non-2xx and responses per slot, and compares p99 right after each switch
 * with the steady p99 of a run without switches.
 *
 * The load here stays autocannon (in-process), whatever --loader says: the
 * scenario reads every response's X-Togather-Slot and X-Upstream-Slot and
 * when it completed, to line latencies up with the switches; wrk gives only
 * totals and a histogram at the end, and a Lua hook per response would change
 * what it costs to measure.
 */
import { performance } from 'node:perf_hooks';
import { renderCutoverChart, type SwitchMark } from '../chart.js';
import { runLoad, type LoadResult, type SlotName } from '../load.js';
import { markdownTable } from '../markdown.js';
import { startNginx } from '../peers/nginx.js';
import { startProxy } from '../proxy-process.js';
import { sleep } from '../processes.js';
import { alternate } from '../rounds.js';
import {
  nginxStatus,
  type Scenario,
  type ScenarioContext,
  type ScenarioOutcome,
} from '../scenario.js';
import { fixed, median, percentile, ratio, summarizeLatency, thousands } from '../stats.js';
import { startUpstream } from '../upstream-process.js';
import { UPSTREAM_PATHS } from '../upstream.js';

/** The window after a switch whose latencies count as "after the switch". */
const AFTER_SWITCH_MS = 100;

type Slot = 'blue' | 'green';
const other = (slot: Slot): Slot => (slot === 'blue' ? 'green' : 'blue');

interface Switcher {
  name: string;
  url: string;
  /** The slot it serves now. */
  current(): Promise<Slot>;
  switchTo(slot: Slot): Promise<{ ok: boolean; status: string }>;
  stop(): Promise<void>;
}

interface SwitchRecord {
  /** ms since the load started: request sent and answer received. */
  sent: number;
  answered: number;
  to: Slot;
  ok: boolean;
  status: string;
}

interface CutoverRun {
  system: string;
  round: number;
  requestsPerSecond: number;
  responses: number;
  errors: number;
  errorKinds: Record<string, number>;
  timeouts: number;
  non2xx: number;
  statusCodes: Record<string, number>;
  /** X-Togather-Slot values (the proxy) and X-Upstream-Slot values (who answered). */
  slots: Partial<Record<SlotName, number>>;
  served: Partial<Record<SlotName, number>>;
  slotMismatches: number;
  switches: SwitchRecord[];
  switchesOk: number;
  /** ms: p99 of a run of the same length without switches. */
  steadyP99: number;
  /** ms: p99 of 2xx responses completed between a switch request and 100 ms after its answer. */
  afterSwitchP99: number;
  worstWindowP99: number;
  /** ms: p99 of the same run outside those windows. */
  betweenSwitchesP99: number;
  loadgenCpuPercent: number;
}

async function proxySwitcher(
  blueUrl: string,
  greenUrl: string,
  cpuProfileDir: string | undefined,
): Promise<Switcher> {
  const proxy = await startProxy({
    name: 'cutover',
    blueUrl,
    greenUrl,
    drainTimeout: '5s',
    cpuProfileDir,
  });
  return {
    name: 'proxy',
    url: proxy.url,
    async current() {
      const status = await proxy.status();
      return status.active === 'green' ? 'green' : 'blue';
    },
    async switchTo(slot) {
      const answer = await proxy.switchTo(slot);
      return { ok: answer.status === 200, status: String(answer.status) };
    },
    stop: () => proxy.stop(),
  };
}

async function nginxSwitcher(ports: Record<Slot, number>, binary: string): Promise<Switcher> {
  const nginx = await startNginx({ upstreamPort: ports.blue, slot: 'blue', workers: 1, binary });
  let active: Slot = 'blue';
  return {
    name: 'nginx',
    url: `http://127.0.0.1:${nginx.port}`,
    current: async () => active,
    async switchTo(slot) {
      try {
        await nginx.switchUpstream(ports[slot], slot);
        active = slot;
        return { ok: true, status: 'reloaded' };
      } catch (error) {
        return { ok: false, status: `reload failed: ${String(error)}` };
      }
    },
    stop: () => nginx.stop(),
  };
}

/**
 * Switches at (k + ½) × interval after `origin`, alternating slots. A slow
 * switch makes the next ones catch up at half the interval, never in a burst;
 * none starts so late that its after-switch window would outlast the load.
 * Bounded by `count`.
 */
async function switchLoop(
  switcher: Switcher,
  origin: number,
  intervalMs: number,
  count: number,
  loadMs: number,
): Promise<{ sentAt: number; answeredAt: number; to: Slot; ok: boolean; status: string }[]> {
  const records = [];
  let active = await switcher.current();
  let previousSent = Number.NEGATIVE_INFINITY;
  const lastDue = origin + loadMs - AFTER_SWITCH_MS * 1.5;
  for (let k = 0; k < count; k++) {
    const due = Math.max(origin + (k + 0.5) * intervalMs, previousSent + intervalMs / 2);
    if (due > lastDue) break;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const to = other(active);
    const sentAt = performance.now();
    previousSent = sentAt;
    const outcome = await switcher.switchTo(to);
    records.push({ sentAt, answeredAt: performance.now(), to, ...outcome });
    if (outcome.ok) active = to;
  }
  return records;
}

/** p99 inside the after-switch windows, the worst single window, and p99 outside them. */
function windowedP99(load: LoadResult, switches: SwitchRecord[]) {
  const windows = switches.map((s) => [s.sent, s.answered + AFTER_SWITCH_MS] as const);
  const inside: number[] = [];
  const outside: number[] = [];
  const perWindow: number[][] = windows.map(() => []);
  const { log } = load;
  let w = 0;
  // Both the log and the windows are in time order: one pass.
  for (let i = 0; i < log.length; i++) {
    if (log.ok[i] !== 1) continue;
    const t = log.time[i]!;
    while (w < windows.length && windows[w]![1] < t) w++;
    const window = windows[w];
    if (window && t >= window[0]) {
      inside.push(log.latency[i]!);
      perWindow[w]!.push(log.latency[i]!);
    } else outside.push(log.latency[i]!);
  }
  const p99 = (values: number[]) =>
    percentile(
      values.sort((a, b) => a - b),
      99,
    );
  const windowP99s = perWindow.filter((v) => v.length > 0).map(p99);
  return {
    afterSwitchP99: p99(inside),
    worstWindowP99: windowP99s.length > 0 ? Math.max(...windowP99s) : Number.NaN,
    betweenSwitchesP99: p99(outside),
  };
}

async function measure(
  context: ScenarioContext,
  switcher: Switcher,
  round: number,
): Promise<{ run: CutoverRun; chart: string }> {
  const { options } = context;
  const connections = options.connections[0]!;
  const url = `${switcher.url}${UPSTREAM_PATHS.small}`;
  const steady = await runLoad({ url, connections, durationSeconds: options.durationSeconds });
  const steadyP99 = summarizeLatency(steady.log.okLatencies()).p99;

  const count = Math.floor((options.cutoverSeconds * 1000) / options.switchIntervalMs);
  const origin = performance.now();
  const loading = runLoad({
    url,
    connections,
    durationSeconds: options.cutoverSeconds,
    readSlots: true,
  });
  const rawSwitches = await switchLoop(
    switcher,
    origin,
    options.switchIntervalMs,
    count,
    options.cutoverSeconds * 1000,
  );
  const load = await loading;
  const switches: SwitchRecord[] = rawSwitches.map((s) => ({
    sent: s.sentAt - load.startedAt,
    answered: s.answeredAt - load.startedAt,
    to: s.to,
    ok: s.ok,
    status: s.status,
  }));
  const windows = windowedP99(load, switches);
  const run: CutoverRun = {
    system: switcher.name,
    round,
    requestsPerSecond: load.requestsPerSecond,
    responses: load.responses,
    errors: load.errors,
    errorKinds: load.errorKinds,
    timeouts: load.timeouts,
    non2xx: load.non2xx,
    statusCodes: load.statusCodes,
    slots: load.slots,
    served: load.served,
    slotMismatches: load.slotMismatches,
    switches,
    switchesOk: switches.filter((s) => s.ok).length,
    steadyP99,
    ...windows,
    loadgenCpuPercent: load.loadgenCpuPercent,
  };
  const marks: SwitchMark[] = switches.map((s) => ({ at: s.sent, to: s.to, ok: s.ok }));
  const chart = renderCutoverChart({
    title: `Cutover under load: ${switcher.name}, ${connections} connections, a switch every ${options.switchIntervalMs} ms (round ${round})`,
    log: load.log,
    durationMs: load.elapsedMs,
    switches: marks,
    errors: load.errorTimes,
  });
  return { run, chart };
}

function slotCounts(counts: Partial<Record<SlotName, number>>): string {
  return `${thousands(counts.blue ?? 0)} / ${thousands(counts.green ?? 0)}`;
}

function errorsWithKinds(runs: CutoverRun[]): string {
  const kinds: Record<string, number> = {};
  let total = 0;
  for (const run of runs) {
    total += run.errors;
    for (const [kind, n] of Object.entries(run.errorKinds)) kinds[kind] = (kinds[kind] ?? 0) + n;
  }
  const named = Object.entries(kinds).map(([kind, n]) => `${kind} ${n}`);
  return named.length > 0 ? `${total} (${named.join(', ')})` : String(total);
}

function systemRow(system: string, runs: CutoverRun[]): string[] {
  const sum = (pick: (r: CutoverRun) => number) => runs.reduce((t, r) => t + pick(r), 0);
  const med = (pick: (r: CutoverRun) => number) => median(runs.map(pick));
  const first = runs[0]!;
  return [
    system,
    `${sum((r) => r.switchesOk)} / ${sum((r) => r.switches.length)}`,
    errorsWithKinds(runs),
    String(sum((r) => r.non2xx)),
    slotCounts(first.slots),
    String(sum((r) => r.slotMismatches)),
    fixed(med((r) => r.steadyP99)),
    fixed(med((r) => r.afterSwitchP99)),
    fixed(med((r) => ratio(r.afterSwitchP99, r.steadyP99))),
    fixed(med((r) => r.worstWindowP99)),
    fixed(med((r) => r.betweenSwitchesP99)),
    thousands(med((r) => r.requestsPerSecond)),
  ];
}

export const cutoverScenario: Scenario = {
  name: 'cutover',
  title: 'Cutover under load',
  async run(context): Promise<ScenarioOutcome> {
    const { options, available } = context;
    const skipped: string[] = [];
    const nginx = nginxStatus(available);
    const blue = await startUpstream('blue');
    const green = await startUpstream('green');
    const switchers: Switcher[] = [];
    const charts: string[] = [];
    const runs: CutoverRun[] = [];
    try {
      if (available.proxyMissing === undefined)
        switchers.push(await proxySwitcher(blue.url, green.url, options.cpuProfileDir));
      else skipped.push(`proxy: ${available.proxyMissing}`);
      if (nginx.binary !== undefined)
        switchers.push(await nginxSwitcher({ blue: blue.port, green: green.port }, nginx.binary));
      else skipped.push(nginx.skip);
      const byName = new Map(switchers.map((s) => [s.name, s]));
      const results = await alternate(
        switchers.map((s) => s.name),
        options.rounds,
        async (name, round) => {
          context.log(`cutover: round ${round}, ${name}: steady run, then switches under load`);
          const { run, chart } = await measure(context, byName.get(name)!, round);
          if (round === 1) charts.push(context.writeArtifact(`cutover-${name}.svg`, chart));
          context.log(
            `cutover: round ${round}, ${name}: ${run.switchesOk}/${run.switches.length} switches, ${run.errors} errors, ${run.non2xx} non-2xx, p99 after switch ${fixed(run.afterSwitchP99)} ms vs steady ${fixed(run.steadyP99)} ms`,
          );
          return run;
        },
      );
      for (const list of results.values()) runs.push(...list);
    } finally {
      for (const switcher of switchers) await switcher.stop();
      await blue.process.stop();
      await green.process.stop();
    }
    const bySystem = new Map<string, CutoverRun[]>();
    for (const run of runs) bySystem.set(run.system, [...(bySystem.get(run.system) ?? []), run]);
    const table = markdownTable(
      [
        'system',
        'switches ok',
        'errors',
        'non-2xx',
        'X-Togather-Slot blue / green (round 1)',
        'slot header ≠ upstream',
        'steady p99 ms',
        'after-switch p99 ms',
        'after / steady',
        'worst window p99 ms',
        'between switches p99 ms',
        'req/s',
      ],
      [...bySystem].map(([system, list]) => systemRow(system, list)),
    );
    const connections = options.connections[0]!;
    const markdown = `Load: autocannon in the bench process (every response's slot headers and completion time are read). ${options.rounds} round(s) per system, alternating; each round is a ${options.durationSeconds} s steady run (no switches) and a ${options.cutoverSeconds} s run with a switch every ${options.switchIntervalMs} ms, small JSON, ${connections} connections. Errors and non-2xx are summed over rounds, p99 figures are medians. "After-switch" covers responses completed from the moment a switch is requested until ${AFTER_SWITCH_MS} ms after it is acknowledged (the admin API's answer for the proxy; \`nginx -s reload\` returning for nginx).

${table}

Charts (round 1): ${charts.map((path) => `\`${path.split('/').pop()}\``).join(', ') || 'none'}.
`;
    return { data: { runs }, markdown, skipped };
  },
};
