/**
 * Reads V8 CPU profiles written by `node --cpu-prof` (the bench's `--cpu-prof`
 * flag starts every proxy that way) and lists where the time went: self time
 * per function, the first thing to look at before changing the hot path.
 * Open the .cpuprofile in Chrome DevTools or speedscope for the flame graph.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  /** µs between consecutive samples. */
  timeDeltas: number[];
}

export interface HotFunction {
  name: string;
  location: string;
  selfMs: number;
  percent: number;
}

export interface ProfileSummary {
  file: string;
  /** Time the process was busy (not waiting in the event loop): the 100 % of `top`. */
  busyMs: number;
  idleMs: number;
  top: HotFunction[];
}

function location(frame: CallFrame, root: string): string {
  if (!frame.url) return '(native)';
  const path = frame.url.replace(/^file:\/\//, '');
  const shown = path.startsWith(root) ? relative(root, path) : path;
  return `${shown}:${frame.lineNumber + 1}`;
}

export function summarizeProfile(
  file: string,
  root: string,
  limit = 25,
  /** Samples in the first `skipMs` (start-up) are left out. */
  skipMs = 0,
): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<string, { name: string; location: string; us: number }>();
  let busyUs = 0;
  let idleUs = 0;
  let elapsedUs = 0;
  profile.samples.forEach((id, index) => {
    const node = byId.get(id);
    const delta = profile.timeDeltas[index] ?? 0;
    elapsedUs += delta;
    if (!node || elapsedUs < skipMs * 1000) return;
    // The proxy idles while other systems are measured: only busy time counts.
    if (node.callFrame.functionName === '(idle)') {
      idleUs += delta;
      return;
    }
    busyUs += delta;
    const name = node.callFrame.functionName || '(anonymous)';
    const where = location(node.callFrame, root);
    const key = `${name}@${where}`;
    const entry = selfUs.get(key) ?? { name, location: where, us: 0 };
    entry.us += delta;
    selfUs.set(key, entry);
  });
  const top = [...selfUs.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, limit)
    .map((e) => ({
      name: e.name,
      location: e.location,
      selfMs: e.us / 1000,
      percent: busyUs > 0 ? (e.us / busyUs) * 100 : 0,
    }));
  return { file, busyMs: busyUs / 1000, idleMs: idleUs / 1000, top };
}

/** Every .cpuprofile in a directory. */
export function profilesIn(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((name) => name.endsWith('.cpuprofile'))
      .map((name) => join(dir, name));
  } catch {
    return [];
  }
}

export function profileMarkdown(summary: ProfileSummary, root: string): string {
  const rows = summary.top.map(
    (f) => `| ${f.percent.toFixed(1)} % | ${f.selfMs.toFixed(0)} | \`${f.name}\` | ${f.location} |`,
  );
  const seconds = (ms: number) => (ms / 1000).toFixed(1);
  return `### ${relative(root, summary.file)}

${seconds(summary.busyMs)} s busy (the 100 %), ${seconds(summary.idleMs)} s idle.

| self (% of busy) | ms | function | where |
| --- | --- | --- | --- |
${rows.join('\n')}
`;
}

/** Where a function's self time is counted in groupProfile. */
export const PROFILE_GROUPS = [
  'GC',
  'socket system calls (writev, write, read)',
  'http parser (llhttp)',
  'node:http server and outgoing',
  'node:net, streams, events, ticks, timers',
  'undici (slot side)',
  'http-proxy-3',
  'the data plane (proxy/edge)',
  'metrics (prom-client, proxy/metrics)',
  'access log (pino)',
  'request id (crypto.randomUUID)',
  'native, not attributed ((program))',
  'other',
] as const;
export type ProfileGroup = (typeof PROFILE_GROUPS)[number];

const SOCKET_CALLS = new Set([
  'writev',
  'writeBuffer',
  'writeUtf8String',
  'writeLatin1String',
  'read',
]);

/** The group of one profile frame (by its script and name). */
export function profileGroup(frame: CallFrame): ProfileGroup {
  const { url, functionName: name } = frame;
  if (name === '(garbage collector)') return 'GC';
  if (name === '(program)') return 'native, not attributed ((program))';
  if (!url && SOCKET_CALLS.has(name)) return 'socket system calls (writev, write, read)';
  if (url.includes('/undici/')) return 'undici (slot side)';
  if (url.includes('/http-proxy-3/')) return 'http-proxy-3';
  if (url.includes('/prom-client/') || url.includes('/proxy/metrics.')) {
    return 'metrics (prom-client, proxy/metrics)';
  }
  if (url.includes('/pino') || url.includes('/sonic-boom/') || url.includes('access-log')) {
    return 'access log (pino)';
  }
  if (url.includes('/proxy/') || url.includes('/common/')) return 'the data plane (proxy/edge)';
  if (url.includes('crypto/random')) return 'request id (crypto.randomUUID)';
  if (url === 'node:_http_common' || name === 'execute' || name.startsWith('parserOn')) {
    return 'http parser (llhttp)';
  }
  if (url.startsWith('node:_http_') || url === 'node:http') return 'node:http server and outgoing';
  if (
    url === 'node:net' ||
    url === 'node:events' ||
    url.startsWith('node:internal/streams') ||
    url.startsWith('node:internal/stream_base') ||
    url.startsWith('node:internal/timers') ||
    url.startsWith('node:internal/process/task_queues') ||
    url === 'node:internal/async_hooks'
  ) {
    return 'node:net, streams, events, ticks, timers';
  }
  return 'other';
}

export interface GroupedProfile {
  busyMs: number;
  /** Share of busy time per group, largest first. */
  groups: { group: ProfileGroup; percent: number }[];
}

/**
 * Self time per group (profileGroup) over the samples taken from `skipMs`
 * after the profile started on (the start-up, module loading included, is
 * left out), as a share of the time the process was busy.
 */
export function groupProfile(file: string, skipMs = 0): GroupedProfile {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const totals = new Map<ProfileGroup, number>();
  let elapsedUs = 0;
  let busyUs = 0;
  profile.samples.forEach((id, index) => {
    const delta = profile.timeDeltas[index] ?? 0;
    elapsedUs += delta;
    const node = byId.get(id);
    if (elapsedUs < skipMs * 1000 || !node || node.callFrame.functionName === '(idle)') return;
    busyUs += delta;
    const group = profileGroup(node.callFrame);
    totals.set(group, (totals.get(group) ?? 0) + delta);
  });
  const groups = [...totals]
    .sort((a, b) => b[1] - a[1])
    .map(([group, us]) => ({ group, percent: busyUs > 0 ? (us / busyUs) * 100 : 0 }));
  return { busyMs: busyUs / 1000, groups };
}

/**
 * `node dist/bench/profile.js <file.cpuprofile> [skip-seconds]`: the groups
 * and the 30 functions with the most self time, as markdown tables.
 */
function main(): void {
  const [file, skip] = process.argv.slice(2);
  if (file === undefined) {
    process.stderr.write('usage: node dist/bench/profile.js <file.cpuprofile> [skip-seconds]\n');
    process.exit(2);
  }
  const skipMs = Number(skip ?? '0') * 1000;
  const grouped = groupProfile(file, skipMs);
  const lines = [
    `${(grouped.busyMs / 1000).toFixed(1)} s busy`,
    '',
    '| group | self % |',
    '| --- | --- |',
  ];
  for (const { group, percent } of grouped.groups)
    lines.push(`| ${group} | ${percent.toFixed(1)} |`);
  const root = process.cwd();
  lines.push('', profileMarkdown(summarizeProfile(file, root, 30, skipMs), root));
  process.stdout.write(`${lines.join('\n')}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
