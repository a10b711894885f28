/**
 * Results on disk: bench/results/<scenario>.json per scenario and a
 * summary.md rebuilt from every result present, so running one scenario
 * keeps the others' latest figures.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import type { BenchOptions, ScenarioOutcome } from './scenario.js';

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  /** Version of each peer asked for; undefined when it is not installed. */
  peers: Record<string, string | undefined>;
  /** The load generator of the steady and multi-core figures, with its version. */
  loader: string;
  kernel: string;
  /** 1-minute load average when the run started: other work on the machine. */
  loadAverage: number;
  gitCommit: string;
  /** Filled in after a scenario: average cores used by other processes meanwhile. */
  otherCores?: number;
  stealCores?: number;
}

export function machineInfo(
  peers: Record<string, string | undefined>,
  loader: string,
): MachineInfo {
  let gitCommit = 'unknown';
  try {
    gitCommit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    // not a git checkout
  }
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 1024 ** 3),
    node: process.version,
    peers,
    loader,
    kernel: release(),
    loadAverage: Number(loadavg()[0]!.toFixed(2)),
    gitCommit,
  };
}

interface StoredResult {
  scenario: string;
  title: string;
  finishedAt: string;
  machine: StoredMachine;
  options: BenchOptions;
  skipped: string[];
  markdown: string;
  data: unknown;
}

export function writeScenarioResult(
  dir: string,
  scenario: { name: string; title: string },
  outcome: ScenarioOutcome,
  machine: MachineInfo,
  options: BenchOptions,
): string {
  mkdirSync(dir, { recursive: true });
  const stored: StoredResult = {
    scenario: scenario.name,
    title: scenario.title,
    finishedAt: new Date().toISOString(),
    machine,
    options,
    skipped: outcome.skipped,
    markdown: outcome.markdown,
    data: outcome.data,
  };
  const path = join(dir, `${scenario.name}.json`);
  writeFileSync(path, `${JSON.stringify(stored, null, 2)}\n`);
  return path;
}

/** "nginx 1.22.1, haproxy 2.6.12, caddy not installed"; older result files name nginx alone. */
export function peerVersions(peers: Record<string, string | undefined>): string {
  return Object.entries(peers)
    .map(([name, version]) => `${name} ${version ?? 'not installed'}`)
    .join(', ');
}

/** A result file's machine; files written before the peers were added name nginx alone. */
type StoredMachine = Omit<MachineInfo, 'peers' | 'loader'> & {
  peers?: Record<string, string | undefined>;
  loader?: string;
  nginx?: string;
};

function machineLine(m: StoredMachine): string {
  const peers = m.peers ? peerVersions(m.peers) : `nginx ${m.nginx ?? 'not installed'}`;
  const loader = m.loader ? `, steady and multicore load: ${m.loader}` : '';
  return `${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, Linux ${m.kernel}, Node ${m.node}, ${peers}${loader}, commit ${m.gitCommit}; other processes used ${m.otherCores?.toFixed(2) ?? '?'} cores on average during the scenario (steal ${m.stealCores?.toFixed(2) ?? '?'})`;
}

/** Rebuilds summary.md from the result files of the given scenarios, in that order. */
export function writeSummary(dir: string, scenarioNames: string[]): string {
  const sections: string[] = [];
  for (const name of scenarioNames) {
    const path = join(dir, `${name}.json`);
    if (!existsSync(path)) continue;
    const stored = JSON.parse(readFileSync(path, 'utf8')) as StoredResult;
    const skipped =
      stored.skipped.length > 0
        ? `\nNot measured:\n\n${stored.skipped.map((s) => `- ${s}\n`).join('')}`
        : '';
    sections.push(`## ${stored.title} (\`${stored.scenario}\`)

${stored.finishedAt}: ${machineLine(stored.machine)}.
${skipped}
${stored.markdown}`);
  }
  const summary = `# Benchmark results

Written by \`npm run bench\` (bench/run.ts); see bench/README.md for what each scenario means.

${sections.join('\n')}`;
  const path = join(dir, 'summary.md');
  writeFileSync(path, summary);
  return path;
}
