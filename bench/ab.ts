/**
 * `node dist/bench/ab.js`: one build of the proxy against another (a lever's
 * before and after), in one run, on one upstream, rounds alternating A B B A,
 * so drift on a shared machine lands on both. Small and targeted where
 * `npm run bench` is the whole comparison with the peers: two proxies (plus
 * nginx with --nginx), one body, one connection count.
 *
 *   node dist/bench/ab.js --a-ref main                 # main (built into a temp worktree) vs this build
 *   node dist/bench/ab.js --a /tmp/other/dist --b dist --b-node=--max-semi-space-size=16
 *   node dist/bench/ab.js --a dist --b dist --b-env PROXY_WORKERS=2
 *
 * Per run: req/s, p99, CPU seconds per 10,000 responses and read/write
 * system calls per response of the proxy's processes (/proc), its RSS at the
 * end; then per system the median over rounds, and B / A taken round by round.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { findWrk, wrkLoader } from './loaders/wrk.js';
import type { LoadFigures, LoadGenerator } from './loaders/loader.js';
import { startNginx } from './peers/nginx.js';
import { CpuMeter, MachineLoadMeter, rssBytes, syscallCount } from './proc.js';
import { installCleanup, sleep, stopAll } from './processes.js';
import { startProxy } from './proxy-process.js';
import { median } from './stats.js';
import { startUpstream } from './upstream-process.js';
import { BODY_NAMES, FRAMINGS, bodyPath, type BodyName, type Framing } from './upstream.js';

const THIS_DIST = fileURLToPath(new URL('../', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

const USAGE = `usage: node dist/bench/ab.js [options]

  --a DIR | --a-ref REF   build A: a dist folder, or a git ref built into a temp worktree
  --b DIR | --b-ref REF   build B (default: this build, ${THIS_DIST})
  --a-env K=V, --b-env K=V      extra proxy variables (repeatable)
  --a-node FLAG, --b-node FLAG  node flags, e.g. --b-node=--max-semi-space-size=16 (repeatable)
  --rounds N        rounds, each runs A and B (default 6; order A B, B A, ...)
  --duration S      seconds per run (default 5)
  --warmup S        seconds of warm-up per system before the rounds (default 3)
  --connections N   wrk connections (default 50)
  --body NAME       ${BODY_NAMES.join(' | ')} (default small)
  --framing NAME    ${FRAMINGS.join(' | ')} (default chunked)
  --nginx           nginx (one worker) as a third system, for ratios to it`;

export interface AbSide {
  label: 'A' | 'B';
  dist: string;
  env: Record<string, string>;
  nodeArgs: string[];
}

export interface AbOptions {
  a: AbSide;
  b: AbSide;
  rounds: number;
  duration: number;
  warmup: number;
  connections: number;
  body: BodyName;
  framing: Framing;
  nginx: boolean;
}

/** One measured run of one system. */
export interface AbRun {
  system: string;
  round: number;
  requestsPerSecond: number;
  p99: number;
  cpuPer10k: number;
  syscallsPerResponse: number;
  rssMb: number;
  errors: number;
  non2xx: number;
  otherCores: number;
}

/** `--help`: the usage, exit 0. */
export class HelpRequested extends Error {}

function envPairs(values: string[] | undefined, flag: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of values ?? []) {
    const at = pair.indexOf('=');
    if (at < 1) throw new Error(`${flag} takes NAME=VALUE, not "${pair}"`);
    env[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return env;
}

function whole(text: string | undefined, fallback: number, flag: string): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${flag} must be a whole number ≥ 1`);
  return value;
}

/** The options of an A/B run from its command line; throws with the reason on a bad one. */
export function parseAbArgs(argv: string[]): AbOptions & { aRef?: string; bRef?: string } {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      a: { type: 'string' },
      b: { type: 'string' },
      'a-ref': { type: 'string' },
      'b-ref': { type: 'string' },
      'a-env': { type: 'string', multiple: true },
      'b-env': { type: 'string', multiple: true },
      'a-node': { type: 'string', multiple: true },
      'b-node': { type: 'string', multiple: true },
      rounds: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      body: { type: 'string' },
      framing: { type: 'string' },
      nginx: { type: 'boolean' },
      help: { type: 'boolean' },
    },
  });
  if (values.help === true) throw new HelpRequested();
  if (values.a !== undefined && values['a-ref'] !== undefined)
    throw new Error('--a and --a-ref exclude each other');
  if (values.b !== undefined && values['b-ref'] !== undefined)
    throw new Error('--b and --b-ref exclude each other');
  if (values.a === undefined && values['a-ref'] === undefined)
    throw new Error('build A is missing: --a DIR or --a-ref REF');
  const body = (values.body ?? 'small') as BodyName;
  if (!BODY_NAMES.includes(body)) throw new Error(`--body: one of ${BODY_NAMES.join(', ')}`);
  const framing = (values.framing ?? 'chunked') as Framing;
  if (!FRAMINGS.includes(framing)) throw new Error(`--framing: one of ${FRAMINGS.join(', ')}`);
  const side = (label: 'A' | 'B', dir: string | undefined, key: 'a' | 'b'): AbSide => ({
    label,
    dist: resolve(dir ?? THIS_DIST),
    env: envPairs(values[`${key}-env`], `--${key}-env`),
    nodeArgs: values[`${key}-node`] ?? [],
  });
  return {
    a: side('A', values.a, 'a'),
    b: side('B', values.b, 'b'),
    aRef: values['a-ref'],
    bRef: values['b-ref'],
    rounds: whole(values.rounds, 6, '--rounds'),
    duration: whole(values.duration, 5, '--duration'),
    warmup: whole(values.warmup, 3, '--warmup'),
    connections: whole(values.connections, 50, '--connections'),
    body,
    framing,
    nginx: values.nginx ?? false,
  };
}

/**
 * A git ref of this repository built into a worktree under the temp dir
 * (kept between runs, rebuilt every time, node_modules linked from here):
 * its dist folder.
 */
export function buildRef(ref: string): string {
  const git = (...args: string[]) =>
    execFileSync('git', ['-C', REPO_ROOT, ...args], { encoding: 'utf8' }).trim();
  const commit = git('rev-parse', '--verify', `${ref}^{commit}`);
  const dir = join(tmpdir(), `togather-ab-${commit.slice(0, 12)}`);
  if (!existsSync(dir)) git('worktree', 'add', '--detach', dir, commit);
  const modules = join(dir, 'node_modules');
  if (!existsSync(modules)) symlinkSync(join(REPO_ROOT, 'node_modules'), modules);
  process.stderr.write(`building ${ref} (${commit.slice(0, 12)}) in ${dir}\n`);
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: dir, stdio: 'inherit' });
  return join(dir, 'dist');
}

interface System {
  name: string;
  url: string;
  pids(): number[];
}

async function measure(
  loader: LoadGenerator,
  system: System,
  options: AbOptions,
  path: string,
  round: number,
): Promise<AbRun> {
  const pids = system.pids();
  const cpu = new CpuMeter(system.pids);
  const syscallsBefore = syscallCount(pids);
  const machine = new MachineLoadMeter();
  const figures: LoadFigures = await loader.run({
    url: `${system.url}${path}`,
    connections: options.connections,
    durationSeconds: options.duration,
  });
  const cpuSeconds = cpu.elapsedCpuSeconds();
  const syscalls = syscallCount(system.pids()) - syscallsBefore;
  const responses = Math.max(1, figures.responses);
  return {
    system: system.name,
    round,
    requestsPerSecond: figures.requestsPerSecond,
    p99: figures.p99,
    cpuPer10k: (cpuSeconds / responses) * 10_000,
    syscallsPerResponse: syscalls / responses,
    rssMb: rssBytes(system.pids()) / 1024 / 1024,
    errors: figures.errors,
    non2xx: figures.non2xx,
    // The load generator is this run's own child, so it counts as "ours", not noise.
    otherCores: machine.read().otherCores,
  };
}

const FIGURES = [
  ['req/s', (r: AbRun) => r.requestsPerSecond, 0],
  ['p99 ms', (r: AbRun) => r.p99, 2],
  ['CPU s/10k', (r: AbRun) => r.cpuPer10k, 3],
  ['syscalls/resp', (r: AbRun) => r.syscallsPerResponse, 2],
  ['RSS MB', (r: AbRun) => r.rssMb, 1],
] as const;

function range(values: number[], digits: number): string {
  const sorted = [...values].sort((x, y) => x - y);
  const f = (v: number) => v.toFixed(digits);
  return `${f(median(values))} (${f(sorted[0]!)}–${f(sorted.at(-1)!)})`;
}

/** The summary table: per system the median (range) of each figure; then B / A round by round. */
export function abTable(runs: AbRun[], systems: string[]): string {
  const header = `| system | ${FIGURES.map(([name]) => name).join(' | ')} | errors |`;
  const lines = [header, `|${' --- |'.repeat(FIGURES.length + 2)}`];
  for (const system of systems) {
    const own = runs.filter((r) => r.system === system);
    const cells = FIGURES.map(([, get, digits]) => range(own.map(get), digits));
    const errors = own.reduce((sum, r) => sum + r.errors + r.non2xx, 0);
    lines.push(`| ${system} | ${cells.join(' | ')} | ${errors} |`);
  }
  for (const [top, bottom] of [
    ['B', 'A'],
    ['B', 'nginx'],
    ['A', 'nginx'],
  ] as const) {
    if (!systems.includes(top) || !systems.includes(bottom)) continue;
    const ratios = FIGURES.map(([, get]) => {
      const byRound = runs
        .filter((r) => r.system === top)
        .flatMap((r) => {
          const other = runs.find((o) => o.system === bottom && o.round === r.round);
          return other === undefined ? [] : [get(r) / get(other)];
        });
      return byRound.length === 0 ? '–' : range(byRound, 3);
    });
    lines.push(`| ${top} / ${bottom} | ${ratios.join(' | ')} | |`);
  }
  return lines.join('\n');
}

function describe(side: AbSide): string {
  const extras = [
    ...side.nodeArgs,
    ...Object.entries(side.env).map(([key, value]) => `${key}=${value}`),
  ];
  return `${side.dist}${extras.length > 0 ? ` (${extras.join(' ')})` : ''}`;
}

async function main(): Promise<void> {
  let options: ReturnType<typeof parseAbArgs>;
  try {
    options = parseAbArgs(process.argv.slice(2));
  } catch (error) {
    if (error instanceof HelpRequested) {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    process.stderr.write(`${(error as Error).message}\n\n${USAGE}\n`);
    process.exit(2);
  }
  const wrk = findWrk();
  if (wrk.binary === undefined) {
    process.stderr.write('wrk is not installed (apt-get install wrk)\n');
    process.exit(2);
  }
  if (options.aRef !== undefined) options.a.dist = buildRef(options.aRef);
  if (options.bRef !== undefined) options.b.dist = buildRef(options.bRef);
  installCleanup();
  const loader = wrkLoader(wrk.binary);
  const path = bodyPath(options.body, options.framing);
  try {
    const upstream = await startUpstream('blue');
    const systems: System[] = [];
    for (const side of [options.a, options.b]) {
      const proxy = await startProxy({
        name: side.label,
        blueUrl: upstream.url,
        greenUrl: upstream.url,
        cli: join(side.dist, 'cli', 'togather.js'),
        nodeArgs: side.nodeArgs,
        env: side.env,
      });
      systems.push({ name: side.label, url: proxy.url, pids: proxy.pids });
    }
    if (options.nginx) {
      const nginx = await startNginx({ upstreamPort: upstream.port });
      systems.push({ name: 'nginx', url: nginx.url, pids: nginx.pids });
    }
    process.stdout.write(
      `A: ${describe(options.a)}\nB: ${describe(options.b)}\n` +
        `${options.body} ${options.framing}, ${options.connections} connections, ` +
        `${options.rounds} rounds × ${options.duration} s, wrk -t1\n\n`,
    );
    for (const system of systems) {
      await loader.run({
        url: `${system.url}${path}`,
        connections: options.connections,
        durationSeconds: options.warmup,
      });
    }
    const runs: AbRun[] = [];
    for (let round = 1; round <= options.rounds; round++) {
      // A B, then B A: a drift within a round lands on both sides.
      const order = round % 2 === 1 ? systems : [...systems].reverse();
      for (const system of order) {
        await sleep(300);
        const run = await measure(loader, system, options, path, round);
        runs.push(run);
        process.stdout.write(
          `round ${round} ${run.system.padEnd(5)} ${run.requestsPerSecond.toFixed(0).padStart(6)} req/s` +
            `  p99 ${run.p99.toFixed(2)} ms  CPU ${run.cpuPer10k.toFixed(3)} s/10k` +
            `  ${run.syscallsPerResponse.toFixed(2)} syscalls/resp  RSS ${run.rssMb.toFixed(1)} MB` +
            `  other ${run.otherCores.toFixed(2)} cores` +
            (run.errors + run.non2xx > 0 ? `  errors ${run.errors} non-2xx ${run.non2xx}` : '') +
            '\n',
        );
      }
    }
    process.stdout.write(
      `\n${abTable(
        runs,
        systems.map((s) => s.name),
      )}\n`,
    );
  } finally {
    await stopAll();
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    process.stderr.write(`${String(error)}\n`);
    process.exitCode = 1;
  });
}
