/** What every scenario receives and returns. */
import type { LoadGenerator } from './loaders/loader.js';
import { WRK_INSTALL_HINT } from './loaders/wrk.js';
import type { PeerStatus } from './peers/peer.js';
import type { BodyName, Framing } from './upstream.js';

export interface BenchOptions {
  /** Seconds per measured load run (steady, multi-core, cutover baseline). */
  durationSeconds: number;
  connections: number[];
  rounds: number;
  /** Steady: response bodies and framings (each body in each framing at each connection count). */
  bodies: BodyName[];
  framings: Framing[];
  /** Peers asked for (nginx, haproxy, caddy); the ones not installed are skipped. */
  peers: string[];
  /** Memory scenario: total requests (1,000,000 by default). */
  requests: number;
  cutoverSeconds: number;
  switchIntervalMs: number;
  /** Fleet scenario: number of switches. */
  switches: number;
  resultsDir: string;
  /** When set, every proxy runs under `node --cpu-prof` and writes its profile here. */
  cpuProfileDir?: string;
}

export interface Availability {
  /** Each peer asked for: runnable (binary, version) or skipped (the line to print). */
  peers: PeerStatus[];
  /** Why our proxy cannot run yet, or undefined when it can. */
  proxyMissing: string | undefined;
}

export interface ScenarioContext {
  options: BenchOptions;
  available: Availability;
  /** The load generator for throughput, latency and CPU figures (steady, multi-core). */
  loader: LoadGenerator;
  log(message: string): void;
  /** Writes a file next to the results (charts); returns its path. */
  writeArtifact(name: string, content: string): string;
}

export interface ScenarioOutcome {
  /** Everything measured, for bench/results/<scenario>.json. */
  data: unknown;
  /** This scenario's section of summary.md. */
  markdown: string;
  /** Systems that could not run and why (a peer or the proxy missing). */
  skipped: string[];
  /** Printed once every scenario has run: the tables to read first. */
  finalReport?: string;
}

export interface Scenario {
  name: string;
  title: string;
  run(context: ScenarioContext): Promise<ScenarioOutcome>;
}

/** The outcome of a scenario that measures our proxy alone, when the proxy cannot run. */
export function proxyUnavailable(reason: string): ScenarioOutcome {
  return {
    data: {},
    markdown: 'Not run: the proxy is not available.\n',
    skipped: [`proxy: ${reason}`],
  };
}

/** The outcome of a scenario that measures with wrk, when wrk is not installed. */
export function wrkMissing(): ScenarioOutcome {
  return {
    data: {},
    markdown: 'Not run: wrk is missing.\n',
    skipped: [`wrk: not installed (${WRK_INSTALL_HINT})`],
  };
}

/** nginx's status among the peers: runnable with its binary, or the skip line. */
export function nginxStatus(
  available: Availability,
): { binary: string; skip?: undefined } | { binary?: undefined; skip: string } {
  const status = available.peers.find((s) => s.peer.name === 'nginx');
  if (status === undefined) return { skip: 'nginx: not in --peers; skipped' };
  return status.available ? { binary: status.binary } : { skip: status.skip };
}
