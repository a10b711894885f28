/**
 * `npm run bench`: starts everything it measures on 127.0.0.1, runs the chosen
 * scenarios, stops everything, and writes bench/results/.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NGINX_INSTALL_HINT, nginxVersion } from './nginx.js';
import { proxyUnavailableReason } from './proxy-process.js';
import { MachineLoadMeter } from './proc.js';
import { profileMarkdown, profilesIn, summarizeProfile } from './profile.js';
import { installCleanup, stopAll } from './processes.js';
import { machineInfo, writeScenarioResult, writeSummary } from './report.js';
import type { BenchOptions, Scenario, ScenarioContext } from './scenario.js';
import { cutoverScenario } from './scenarios/cutover.js';
import { fleetScenario } from './scenarios/fleet.js';
import { memoryScenario } from './scenarios/memory.js';
import { multicoreScenario } from './scenarios/multicore.js';
import { steadyScenario } from './scenarios/steady.js';

const SCENARIOS: Scenario[] = [
  steadyScenario,
  cutoverScenario,
  fleetScenario,
  memoryScenario,
  multicoreScenario,
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
  requests: number;
  cutoverSeconds: number;
  switchInterval: number;
  switches: number;
  results: string;
  cpuProf: boolean;
}

function parseFlags(argv: string[]): Flags {
  const program = new Command('bench')
    .description('Benchmarks of the togather proxy against nginx and a direct connection')
    .addOption(
      new Option('--scenarios <list>', 'comma-separated scenario names')
        .argParser(scenarioList)
        .default(SCENARIOS, SCENARIOS.map((s) => s.name).join(',')),
    )
    .option('--duration <seconds>', 'seconds per measured run', positiveNumber, 3)
    .addOption(
      new Option('--connections <list>', 'connection counts (steady; the first for the others)')
        .argParser(intList)
        .default([50, 256], '50,256'),
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
    requests: flags.requests,
    cutoverSeconds: flags.cutoverSeconds,
    switchIntervalMs: flags.switchInterval,
    switches: flags.switches,
    resultsDir: resolve(flags.results),
  };
  const nginx = nginxVersion();
  if (nginx === undefined)
    console.log(
      `nginx is not installed: nginx figures are skipped. Install it: ${NGINX_INSTALL_HINT}`,
    );
  const proxyMissing = proxyUnavailableReason();
  if (proxyMissing !== undefined) console.log(`proxy figures are skipped: ${proxyMissing}`);
  const machine = machineInfo(nginx);
  console.log(
    `machine: ${machine.cpus} × ${machine.cpuModel}, Node ${machine.node}, nginx ${nginx ?? '–'}, load average ${machine.loadAverage}`,
  );
  mkdirSync(options.resultsDir, { recursive: true });
  const context: ScenarioContext = {
    options,
    available: { nginx, proxyMissing },
    log: (message) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${message}`),
    writeArtifact: (name, content) => {
      const path = join(options.resultsDir, name);
      writeFileSync(path, content);
      return path;
    },
  };
  let failed = false;
  for (const scenario of flags.scenarios) {
    context.log(`scenario ${scenario.name}: ${scenario.title}`);
    const profileDir = flags.cpuProf ? freshProfileDir(scenario.name) : undefined;
    const scenarioContext = { ...context, options: { ...options, cpuProfileDir: profileDir } };
    const machineLoad = new MachineLoadMeter();
    try {
      const outcome = await scenario.run(scenarioContext);
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
