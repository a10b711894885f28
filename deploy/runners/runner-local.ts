import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Slot } from '../../common/slot.js';
import { isHealthy, probe, waitHealthyWhileRunning } from '../rollout/app-probe.js';
import { runToEnd, tail, type SlotRunner } from './runner.js';
import {
  isTogatherProcess,
  portInUse,
  SlotProcessFile,
  stopProcess,
  type SlotProcess,
} from './slot-processes.js';

export interface LocalRunnerOptions {
  /** A built dist/ tree: `<build>/cli/togather.js` is the CLI to run. */
  build: string;
  /** The env file's app settings, without the slot-specific variables. */
  env: Record<string, string>;
  ports: Record<Slot, number>;
  /** Each slot's METRICS_PORT: both slots run on this machine (0: any free port). */
  metricsPorts: Record<Slot, number>;
  slotProcesses: SlotProcessFile;
  /** Where each slot's output goes (`<logDir>/<slot>.log`). */
  logDir: string;
  /** How long the old process of a slot may take to finish its requests. */
  stopGraceMs: number;
}

/** The CLI entry of a build directory. */
export function cliOf(build: string): string {
  return join(resolve(build), 'cli', 'togather.js');
}

/** A process this runner started on a slot, and why it ended if it did. */
interface Launched {
  pid: number;
  exit: string | undefined;
}

/**
 * Runs the new version as a detached `togather serve` process on the slot's
 * port (127.0.0.1), outliving the deploy command, with its pid in the slot
 * process file; the previous process of that slot is stopped first, and
 * started again by `restore` when the deploy fails.
 */
export function createLocalRunner(options: LocalRunnerOptions): SlotRunner {
  const launched = new Map<Slot, Launched>();
  /** What served on a slot before `start` replaced it (undefined: nothing healthy did). */
  const replaced = new Map<Slot, SlotProcess | undefined>();

  function slotEnv(slot: Slot): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      ...options.env,
      SLOT: slot,
      SERVER_HOST: '127.0.0.1',
      SERVER_PORT: String(options.ports[slot]),
      METRICS_PORT: String(options.metricsPorts[slot]),
    };
  }

  const slotUrl = (slot: Slot) => `http://127.0.0.1:${options.ports[slot]}`;

  async function stopKnown(slot: Slot): Promise<string> {
    const known = options.slotProcesses.read()[slot];
    if (!known) return `nothing known on ${slot}`;
    await options.slotProcesses.set(slot, undefined);
    if (!isTogatherProcess(known.pid)) return `${slot} pid ${known.pid} already gone`;
    const how = await stopProcess(known.pid, options.stopGraceMs);
    return `${slot} pid ${known.pid} (${versionText(known)}) ${how}`;
  }

  /** Starts `serve` of a build on the slot; its version is unknown until it reports one. */
  async function launch(slot: Slot, build: string): Promise<SlotProcess> {
    const port = options.ports[slot];
    if (await portInUse(port)) {
      throw new Error(
        `port ${port} of ${slot} is in use by a process this deploy does not know; stop it first`,
      );
    }
    mkdirSync(options.logDir, { recursive: true });
    const log = join(options.logDir, `${slot}.log`);
    const fd = openSync(log, 'a', 0o600);
    const child = spawn(process.execPath, [cliOf(build), 'serve'], {
      env: slotEnv(slot),
      detached: true,
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    const pid = await new Promise<number>((ok, fail) => {
      child.once('spawn', () => ok(child.pid!));
      child.once('error', fail);
    });
    const entry: Launched = { pid, exit: undefined };
    launched.set(slot, entry);
    child.once('exit', (code, signal) => {
      entry.exit = `exited with ${signal ?? `code ${code}`}: ${tail(readTail(log), 3)}`;
    });
    child.unref();
    const record: SlotProcess = {
      pid,
      port,
      build: resolve(build),
      version: null,
      started_at: new Date().toISOString(),
      log,
      started_by: 'deploy',
    };
    await options.slotProcesses.set(slot, record);
    return record;
  }

  /** The slot's record, if it is still the process this runner started last. */
  function ownRecord(slot: Slot): SlotProcess | undefined {
    const known = options.slotProcesses.read()[slot];
    return known && known.pid === launched.get(slot)?.pid ? known : undefined;
  }

  return {
    kind: 'local',
    artifact: resolve(options.build),
    slotUrl,
    describeStart: (slot) => {
      const known = options.slotProcesses.read()[slot];
      const first = known
        ? `stop ${slot} pid ${known.pid} (${versionText(known)})`
        : `nothing known on ${slot}`;
      return `${first}, then SLOT=${slot} SERVER_PORT=${options.ports[slot]} node ${cliOf(options.build)} serve`;
    },

    runCommand: (slot, args) =>
      runToEnd(process.execPath, [cliOf(options.build), ...args], { env: slotEnv(slot) }),

    async start(slot) {
      const known = options.slotProcesses.read()[slot];
      const serving =
        known !== undefined &&
        isTogatherProcess(known.pid) &&
        isHealthy(await probe(`${slotUrl(slot)}/health`, 2_000));
      replaced.set(slot, serving ? known : undefined);
      const stopped = await stopKnown(slot);
      const entry = await launch(slot, options.build);
      return `pid ${entry.pid} on 127.0.0.1:${entry.port} (${stopped}); log ${entry.log}`;
    },

    exited: (slot) => launched.get(slot)?.exit,

    async noteVersion(slot, version) {
      const own = ownRecord(slot);
      if (own) await options.slotProcesses.set(slot, { ...own, version });
    },

    async restore(slot, health) {
      const failed = ownRecord(slot);
      let undone = `nothing of this deploy runs on ${slot}`;
      if (failed) {
        await options.slotProcesses.set(slot, undefined);
        const how = isTogatherProcess(failed.pid)
          ? await stopProcess(failed.pid, options.stopGraceMs)
          : 'gone';
        undone = `the new pid ${failed.pid} ${how}`;
      }
      const before = replaced.get(slot);
      if (!before) return `${slot} is stopped: ${undone}; nothing served there before`;
      const again = `${before.version ?? 'the previous version'} from ${before.build}`;
      if (!existsSync(cliOf(before.build))) {
        return `${slot} is stopped: ${undone}; cannot start ${again} again: ${cliOf(before.build)} is gone`;
      }
      let entry: SlotProcess;
      try {
        entry = await launch(slot, before.build);
      } catch (error) {
        return `${slot} is stopped: ${undone}; cannot start ${again} again: ${(error as Error).message}`;
      }
      const waited = await waitHealthyWhileRunning(slotUrl(slot), {
        ...health,
        exited: () => launched.get(slot)?.exit,
      });
      const reported = waited.healthy ? (await probe(`${slotUrl(slot)}/version`)).body : null;
      if (!waited.healthy || typeof reported?.version !== 'string') {
        await options.slotProcesses.set(slot, undefined);
        await stopProcess(entry.pid, options.stopGraceMs);
        const why = waited.exited ?? `/health ${waited.last.summary}`;
        return `${slot} is stopped: ${undone}; ${again} did not come back healthy (${why})`;
      }
      await options.slotProcesses.set(slot, { ...entry, version: reported.version });
      return `${slot} serves ${reported.version} again (pid ${entry.pid}, ${before.build}): ${undone}`;
    },

    stop: stopKnown,
  };
}

function versionText(known: SlotProcess): string {
  return known.version ?? 'version not reported';
}

function readTail(path: string): string {
  try {
    const text = readFileSync(path, 'utf8');
    return text.slice(-2000);
  } catch {
    return '';
  }
}
