/**
 * wrk as the load generator: a separate process (one thread, `-t1`), so it
 * does not share the bench's event loop, and much cheaper per request than
 * autocannon, which flattered whichever system was slower by taking CPU from
 * the faster one. A small Lua `done()` hook prints wrk's totals and latency
 * percentiles (µs, from its own histogram) as one JSON line.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { findCommand } from '../peers/peer.js';
import { reapedChildrenCpuSeconds } from '../proc.js';
import { makeTempDir, startProcess } from '../processes.js';
import type { LoadFigures, LoadGenerator, LoadRun } from './loader.js';

export const WRK_INSTALL_HINT = 'apt-get install wrk';

const REPORT_MARK = 'WRK_REPORT ';

/** wrk's Lua hook: runs once at the end, in the main thread, with every thread's totals. */
export const WRK_REPORT_SCRIPT = `-- Written by bench/loaders/wrk.ts: wrk's totals as one JSON line.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '${REPORT_MARK}{"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,' ..
    '"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f,' ..
    '"p50_us":%.0f,"p99_us":%.0f,"p999_us":%.0f,"max_us":%.0f}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
`;

/** What the Lua hook prints. */
export interface WrkReport {
  requests: number;
  duration_us: number;
  bytes: number;
  connect: number;
  read: number;
  write: number;
  /** Responses with a status ≥ 400 (wrk's only status check). */
  status: number;
  timeout: number;
  p50_us: number;
  p99_us: number;
  p999_us: number;
  max_us: number;
}

const REPORT_FIELDS: (keyof WrkReport)[] = [
  'requests',
  'duration_us',
  'bytes',
  'connect',
  'read',
  'write',
  'status',
  'timeout',
  'p50_us',
  'p99_us',
  'p999_us',
  'max_us',
];

/** The report line in wrk's output, or undefined when there is none or it is malformed. */
export function parseWrkReport(output: string): WrkReport | undefined {
  const line = output.split('\n').find((l) => l.startsWith(REPORT_MARK));
  if (line === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(line.slice(REPORT_MARK.length));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const record = parsed as Record<string, unknown>;
  for (const field of REPORT_FIELDS)
    if (typeof record[field] !== 'number' || !Number.isFinite(record[field])) return undefined;
  return record as unknown as WrkReport;
}

/** The figures of a wrk report; CPU is the caller's (it is read outside wrk). */
export function figuresFromReport(report: WrkReport): Omit<LoadFigures, 'loadgenCpuPercent'> {
  const errorKinds: Record<string, number> = {};
  for (const kind of ['connect', 'read', 'write', 'timeout'] as const)
    if (report[kind] > 0) errorKinds[kind] = report[kind];
  const elapsedMs = report.duration_us / 1000;
  return {
    loader: 'wrk',
    responses: report.requests,
    elapsedMs,
    requestsPerSecond: elapsedMs > 0 ? (report.requests / elapsedMs) * 1000 : 0,
    p50: report.p50_us / 1000,
    p99: report.p99_us / 1000,
    p999: report.p999_us / 1000,
    max: report.max_us / 1000,
    errors: report.connect + report.read + report.write + report.timeout,
    errorKinds,
    non2xx: report.status,
    bytes: report.bytes,
  };
}

/** wrk's version ("4.1.0-3+b2" from Debian's "wrk debian/4.1.0-3+b2 [epoll] …"), or undefined when absent. */
export function wrkVersion(binary: string): string | undefined {
  // `wrk --version` prints the version and the usage, and exits 1.
  const result = spawnSync(binary, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (result.error) return undefined;
  return /^wrk (?:debian\/)?(\S+)/m.exec(`${result.stdout}${result.stderr}`)?.[1];
}

export interface WrkStatus {
  binary: string | undefined;
  version: string | undefined;
}

/** Where wrk is and its version; both undefined when it is not installed. */
export function findWrk(binary?: string): WrkStatus {
  const found = findCommand(binary ?? 'wrk');
  const version = found === undefined ? undefined : wrkVersion(found);
  return { binary: version === undefined ? undefined : found, version };
}

/** The figures of a run that produced no report: every figure missing, the failure as an error. */
function failedRun(kind: string, elapsedMs: number): LoadFigures {
  return {
    loader: 'wrk',
    responses: 0,
    elapsedMs,
    requestsPerSecond: 0,
    p50: Number.NaN,
    p99: Number.NaN,
    p999: Number.NaN,
    max: Number.NaN,
    errors: 1,
    errorKinds: { [kind]: 1 },
    non2xx: 0,
    loadgenCpuPercent: Number.NaN,
  };
}

export function wrkLoader(binary: string): LoadGenerator {
  let script: string | undefined;
  const scriptPath = () => {
    if (script === undefined) {
      script = join(makeTempDir('wrk'), 'report.lua');
      writeFileSync(script, WRK_REPORT_SCRIPT);
    }
    return script;
  };
  const effectiveSeconds = (durationSeconds: number) => Math.max(1, Math.ceil(durationSeconds));
  return {
    name: 'wrk',
    effectiveSeconds,
    async run(run: LoadRun): Promise<LoadFigures> {
      const seconds = effectiveSeconds(run.durationSeconds);
      const args = [
        '-t1',
        `-c${run.connections}`,
        `-d${seconds}s`,
        '--timeout',
        '10s',
        '-s',
        scriptPath(),
        ...Object.entries(run.headers ?? {}).flatMap(([name, value]) => [
          '-H',
          `${name}: ${value}`,
        ]),
        run.url,
      ];
      const cpuBefore = reapedChildrenCpuSeconds();
      const started = performance.now();
      // Registered like every child of the bench: Ctrl-C or a crash stops it too.
      const child = startProcess('wrk', binary, args, {});
      // wrk stops by itself; this only bounds a wrk that hangs.
      const safety = setTimeout(() => child.child.kill('SIGKILL'), (seconds + 30) * 1000);
      const { code, signal } = await child.exited;
      // 'exit' can come before the last of stdout: the report is the last line.
      await child.closed;
      clearTimeout(safety);
      const elapsedMs = performance.now() - started;
      const output = child.output();
      const report = parseWrkReport(output);
      if (code !== 0 || report === undefined) {
        const why =
          code === 0
            ? 'printed no report'
            : code === null && signal === null
              ? 'did not start'
              : `exited ${signal ?? `with ${String(code)}`}`;
        const detail = output.trim().split('\n').at(-1)?.trim() ?? '';
        return failedRun(`wrk ${why}${detail ? `: ${detail}` : ''}`, elapsedMs);
      }
      const figures = figuresFromReport(report);
      // wrk has been reaped by now: its CPU is in this process's children's time.
      const cpu = reapedChildrenCpuSeconds() - cpuBefore;
      return {
        ...figures,
        loadgenCpuPercent: (cpu * 1000 * 100) / Math.max(1, figures.elapsedMs),
      };
    },
  };
}
