/**
 * Reads V8 CPU profiles written by `node --cpu-prof` (the bench's `--cpu-prof`
 * flag starts every proxy that way) and lists where the time went: self time
 * per function, the first thing to look at before changing the hot path.
 * Open the .cpuprofile in Chrome DevTools or speedscope for the flame graph.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

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

export function summarizeProfile(file: string, root: string, limit = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<string, { name: string; location: string; us: number }>();
  let busyUs = 0;
  let idleUs = 0;
  profile.samples.forEach((id, index) => {
    const node = byId.get(id);
    const delta = profile.timeDeltas[index] ?? 0;
    if (!node) return;
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
