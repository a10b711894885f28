import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Slot } from '../../proxy/state/slot-state.js';
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
  version: string;
  /** The app's environment (from the env file), without the slot-specific variables. */
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

/**
 * Runs the new version as a detached `togather serve` process on the slot's
 * port (127.0.0.1), outliving the deploy command, with its pid in the slot
 * process file; the previous process of that slot is stopped first.
 */
export function createLocalRunner(options: LocalRunnerOptions): SlotRunner {
  const cli = cliOf(options.build);
  const exits = new Map<Slot, string>();

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

  async function stopKnown(slot: Slot): Promise<string> {
    const known = options.slotProcesses.read()[slot];
    if (!known) return `nothing known on ${slot}`;
    await options.slotProcesses.set(slot, undefined);
    if (!isTogatherProcess(known.pid)) return `${slot} pid ${known.pid} already gone`;
    const how = await stopProcess(known.pid, options.stopGraceMs);
    return `${slot} pid ${known.pid} (${known.version}) ${how}`;
  }

  return {
    kind: 'local',
    artifact: resolve(options.build),
    slotUrl: (slot) => `http://127.0.0.1:${options.ports[slot]}`,
    describeStart: (slot) =>
      `stop the process known on ${slot}, then SLOT=${slot} SERVER_PORT=${options.ports[slot]} node ${cli} serve`,

    runCommand: (slot, args) => runToEnd(process.execPath, [cli, ...args], { env: slotEnv(slot) }),

    async start(slot) {
      const stopped = await stopKnown(slot);
      const port = options.ports[slot];
      if (await portInUse(port)) {
        throw new Error(
          `port ${port} of ${slot} is in use by a process this deploy does not know; stop it first`,
        );
      }
      mkdirSync(options.logDir, { recursive: true });
      const log = join(options.logDir, `${slot}.log`);
      const fd = openSync(log, 'a', 0o600);
      exits.delete(slot);
      const child = spawn(process.execPath, [cli, 'serve'], {
        env: slotEnv(slot),
        detached: true,
        stdio: ['ignore', fd, fd],
      });
      closeSync(fd);
      const pid = await new Promise<number>((ok, fail) => {
        child.once('spawn', () => ok(child.pid!));
        child.once('error', fail);
      });
      child.once('exit', (code, signal) => {
        exits.set(slot, `exited with ${signal ?? `code ${code}`}: ${tail(readTail(log), 3)}`);
      });
      child.unref();
      const entry: SlotProcess = {
        pid,
        port,
        build: resolve(options.build),
        version: options.version,
        started_at: new Date().toISOString(),
        log,
        started_by: 'deploy',
      };
      await options.slotProcesses.set(slot, entry);
      return `pid ${pid} on 127.0.0.1:${port} (${stopped}); log ${log}`;
    },

    exited: (slot) => exits.get(slot),

    stop: stopKnown,
  };
}

function readTail(path: string): string {
  try {
    const text = readFileSync(path, 'utf8');
    return text.slice(-2000);
  } catch {
    return '';
  }
}
