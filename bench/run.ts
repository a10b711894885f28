/**
 * `npm run bench`: starts everything it measures on 127.0.0.1, runs the chosen
 * scenarios, stops everything, and writes bench/results/.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { autocannonLoader } from './loaders/autocannon.js';
import { LOADER_NAMES, type LoadGenerator, type LoaderName } from './loaders/loader.js';
import { WRK_INSTALL_HINT, findWrk, wrkLoader } from './loaders/wrk.js';
import { PEER_NAMES, checkPeers } from './peers/index.js';
import { proxyUnavailableReason } from './proxy-process.js';
import { MachineLoadMeter } from './proc.js';
import { profileMarkdown, profilesIn, summarizeProfile } from './profile.js';
import { installCleanup, stopAll } from './processes.js';
import { machineInfo, peerVersions, writeScenarioResult, writeSummary } from './report.js';
import type { BenchOptions, Scenario, ScenarioContext } from './scenario.js';
import { cutoverScenario } from './scenarios/cutover.js';
import { fleetScenario } from './scenarios/fleet.js';
import { memoryScenario } from './scenarios/memory.js';
import { multicoreScenario } from './scenarios/multicore.js';
import { steadyScenario } from './scenarios/steady.js';
import { tlsScenario } from './scenarios/tls.js';
import { compressionScenario } from './scenarios/compression.js';
import { BODY_NAMES, FRAMINGS, type BodyName, type Framing } from './upstream.js';

const SCENARIOS: Scenario[] = [
  steadyScenario,
  cutoverScenario,
  fleetScenario,
  memoryScenario,
  multicoreScenario,
  tlsScenario,
  compressionScenario,
];

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

function positiveInt(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1)
    throw new InvalidArgumentError('must be a whole number of at least 1');
  return value;
}

function positiveNumber(text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new InvalidArgumentError('must be above 0');
  return value;
}

function intList(text: string): number[] {
  return text.split(',').map((part) => positiveInt(part.trim()));
}

/** A comma-separated list of names out of `known`, in the order given, each once. */
function nameList<T extends string>(what: string, known: readonly T[]) {
  return (text: string): T[] => {
    const names = text.split(',').map((part) => part.trim());
    for (const name of names)
      if (!(known as readonly string[]).includes(name))
        throw new InvalidArgumentError(`unknown ${what} "${name}" (known: ${known.join(', ')})`);
    return [...new Set(names)] as T[];
  };
}

/** Repeatable `name=path`, collected into one record. */
function peerBinary(text: string, previous: Record<string, string>): Record<string, string> {
  const at = text.indexOf('=');
  const name = text.slice(0, at);
  const path = text.slice(at + 1);
  if (at < 1 || path === '' || !PEER_NAMES.includes(name))
    throw new InvalidArgumentError(
      `expected <peer>=<path> with peer one of ${PEER_NAMES.join(', ')}`,
    );
  return { ...previous, [name]: path };
}

function scenarioList(text: string): Scenario[] {
  const names = text.split(',').map((part) => part.trim());
  return names.map((name) => {
    const found = SCENARIOS.find((s) => s.name === name);
    if (!found)
      throw new InvalidArgumentError(
        `unknown scenario "${name}" (known: ${SCENARIOS.map((s) => s.name).join(', ')})`,
      );
    return found;
  });
}

interface Flags {
  scenarios: Scenario[];
  duration: number;
  connections: number[];
  rounds: number;
  loader: LoaderName;
  peers: string[];
  peerBinary: Record<string, string>;
  bodies: BodyName[];
  framing: Framing[];
  requests: number;
  cutoverSeconds: number;
  switchInterval: number;
  switches: number;
  results: string;
  cpuProf: boolean;
}

function parseFlags(argv: string[]): Flags {
  const program = new Command('bench')
    .description(
      'Benchmarks of the togather proxy against nginx, HAProxy, Caddy and a direct connection',
    )
    .addOption(
      new Option('--scenarios <list>', 'comma-separated scenario names')
        .argParser(scenarioList)
        .default(SCENARIOS, SCENARIOS.map((s) => s.name).join(',')),
    )
    .option(
      '--duration <seconds>',
      'seconds per measured run (wrk rounds up to whole seconds)',
      positiveNumber,
      5,
    )
    .addOption(
      new Option('--connections <list>', 'connection counts (steady; the first for the others)')
        .argParser(intList)
        .default([50], '50'),
    )
    .addOption(
      new Option('--loader <name>', 'load generator for the steady and multicore figures')
        .choices(LOADER_NAMES)
        .default('wrk'),
    )
    .addOption(
      new Option(
        '--peers <list>',
        'peers to compare with, comma-separated (missing ones are skipped)',
      )
        .argParser(nameList('peer', PEER_NAMES))
        .default(PEER_NAMES, PEER_NAMES.join(',')),
    )
    .addOption(
      new Option(
        '--peer-binary <peer=path>',
        "a peer's executable instead of the one on PATH/sbin (repeatable)",
      )
        .argParser(peerBinary)
        .default({}, 'none'),
    )
    .addOption(
      new Option('--bodies <list>', 'steady: response bodies (small JSON, 64 KiB, 1 MiB streamed)')
        .argParser(nameList('body', BODY_NAMES))
        .default(BODY_NAMES, BODY_NAMES.join(',')),
    )
    .addOption(
      new Option(
        '--framing <list>',
        'upstream body framing: chunked, length (Content-Length); steady runs each, multicore the first',
      )
        .argParser(nameList('framing', FRAMINGS))
        .default(['chunked'], 'chunked'),
    )
    .option(
      '--rounds <n>',
      'rounds per comparison (systems alternate within a round)',
      positiveInt,
      3,
    )
    .option('--requests <n>', 'requests in the memory scenario', positiveInt, 1_000_000)
    .option('--cutover-seconds <seconds>', 'length of each cutover run', positiveNumber, 20)
    .option('--switch-interval <ms>', 'time between switches in the cutover run', positiveInt, 500)
    .option('--switches <n>', 'switches in the fleet scenario', positiveInt, 100)
    .addOption(
      new Option('--results <dir>', 'where results go').default(
        join(REPO_ROOT, 'bench', 'results'),
        'bench/results',
      ),
    )
    .option(
      '--cpu-prof',
      'run every proxy under node --cpu-prof; profiles and their top functions go to bench/profiles/<scenario>/',
      false,
    )
    .exitOverride()
    .showHelpAfterError();
  program.parse(argv);
  return program.opts<Flags>();
}

/** bench/profiles/<scenario>/, emptied of an earlier run's profiles. */
function freshProfileDir(scenario: string): string {
  const dir = join(REPO_ROOT, 'bench', 'profiles', scenario);
  mkdirSync(dir, { recursive: true });
  for (const file of profilesIn(dir)) rmSync(file);
  return dir;
}

/** Summarizes each profile into <dir>/summary.md and prints the top of the busiest one. */
function reportProfiles(dir: string, log: (message: string) => void): void {
  const summaries = profilesIn(dir)
    .map((file) => summarizeProfile(file, REPO_ROOT))
    .sort((a, b) => b.busyMs - a.busyMs);
  if (summaries.length === 0) {
    log(`no CPU profile was written to ${dir} (did the proxy exit cleanly?)`);
    return;
  }
  const markdown = summaries.map((s) => profileMarkdown(s, REPO_ROOT)).join('\n');
  writeFileSync(join(dir, 'summary.md'), `# CPU profiles: self time per function\n\n${markdown}`);
  const busiest = summaries[0]!;
  log(`CPU profile ${busiest.file}: top functions by self time (% of busy time)`);
  for (const f of busiest.top.slice(0, 12))
    log(`  ${f.percent.toFixed(1).padStart(5)} %  ${f.name}  ${f.location}`);
  log(`all profiles summarized in ${join(dir, 'summary.md')}`);
}

/** wrk when asked for and installed; autocannon otherwise, saying why. */
function chooseLoader(name: LoaderName): { loader: LoadGenerator; loaderLine: string } {
  if (name === 'autocannon')
    return { loader: autocannonLoader, loaderLine: 'autocannon (in the bench process)' };
  const wrk = findWrk();
  if (wrk.binary === undefined) {
    console.log(
      `wrk: not installed (${WRK_INSTALL_HINT}); autocannon measures instead (in the bench process, which flatters the slower systems)`,
    );
    return { loader: autocannonLoader, loaderLine: 'autocannon (wrk not installed)' };
  }
  return { loader: wrkLoader(wrk.binary), loaderLine: `wrk ${wrk.version ?? ''} -t1`.trim() };
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
  const options: BenchOptions = {
    durationSeconds: flags.duration,
    connections: flags.connections,
    rounds: flags.rounds,
    bodies: flags.bodies,
    framings: flags.framing,
    peers: flags.peers,
    requests: flags.requests,
    cutoverSeconds: flags.cutoverSeconds,
    switchIntervalMs: flags.switchInterval,
    switches: flags.switches,
    resultsDir: resolve(flags.results),
  };
  const peers = checkPeers(flags.peers, flags.peerBinary);
  for (const status of peers) if (!status.available) console.log(status.skip);
  const proxyMissing = proxyUnavailableReason();
  if (proxyMissing !== undefined) console.log(`proxy figures are skipped: ${proxyMissing}`);
  const { loader, loaderLine } = chooseLoader(flags.loader);
  const versions = Object.fromEntries(
    peers.map((s) => [s.peer.name, s.available ? s.version : undefined]),
  );
  const machine = machineInfo(versions, loaderLine);
  console.log(
    `machine: ${machine.cpus} × ${machine.cpuModel}, Node ${machine.node}, ${peerVersions(versions)}, load: ${loaderLine}, load average ${machine.loadAverage}`,
  );
  mkdirSync(options.resultsDir, { recursive: true });
  const context: ScenarioContext = {
    options,
    available: { peers, proxyMissing },
    loader,
    log: (message) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${message}`),
    writeArtifact: (name, content) => {
      const path = join(options.resultsDir, name);
      writeFileSync(path, content);
      return path;
    },
  };
  let failed = false;
  const finalReports: string[] = [];
  for (const scenario of flags.scenarios) {
    context.log(`scenario ${scenario.name}: ${scenario.title}`);
    const profileDir = flags.cpuProf ? freshProfileDir(scenario.name) : undefined;
    const scenarioContext = { ...context, options: { ...options, cpuProfileDir: profileDir } };
    const machineLoad = new MachineLoadMeter();
    try {
      const outcome = await scenario.run(scenarioContext);
      if (outcome.finalReport !== undefined) finalReports.push(outcome.finalReport);
      for (const line of outcome.skipped) context.log(`scenario ${scenario.name}: ${line}`);
      const load = machineLoad.read();
      context.log(
        `scenario ${scenario.name}: other processes used ${load.otherCores.toFixed(2)} cores on average meanwhile (steal ${load.stealCores.toFixed(2)})`,
      );
      // The commit is the one read when the run began (what was built); the other
      // processes' load is this scenario's own.
      const path = writeScenarioResult(
        options.resultsDir,
        scenario,
        outcome,
        { ...machine, ...load },
        options,
      );
      context.log(`scenario ${scenario.name}: wrote ${path}`);
    } catch (error) {
      failed = true;
      console.error(
        `scenario ${scenario.name} failed: ${error instanceof Error ? error.stack : String(error)}`,
      );
    } finally {
      // Whatever a failed scenario left running must not disturb the next one.
      await stopAll();
    }
    if (profileDir) reportProfiles(profileDir, context.log);
  }
  const summary = writeSummary(
    options.resultsDir,
    SCENARIOS.map((s) => s.name),
  );
  if (finalReports.length > 0) console.log(`\n${finalReports.join('\n')}`);
  console.log(`\nsummary: ${summary}`);
  return failed ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  async (error: unknown) => {
    console.error(error instanceof Error ? error.stack : String(error));
    await stopAll();
    process.exitCode = 1;
  },
);
