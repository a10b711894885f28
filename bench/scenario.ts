/** What every scenario receives and returns. */

export interface BenchOptions {
  /** Seconds per measured load run (steady, multi-core, cutover baseline). */
  durationSeconds: number;
  connections: number[];
  rounds: number;
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
  /** nginx version, or undefined when nginx is not installed. */
  nginx: string | undefined;
  /** Why our proxy cannot run yet, or undefined when it can. */
  proxyMissing: string | undefined;
}

export interface ScenarioContext {
  options: BenchOptions;
  available: Availability;
  log(message: string): void;
  /** Writes a file next to the results (charts); returns its path. */
  writeArtifact(name: string, content: string): string;
}

export interface ScenarioOutcome {
  /** Everything measured, for bench/results/<scenario>.json. */
  data: unknown;
  /** This scenario's section of summary.md. */
  markdown: string;
  /** Systems that could not run and why (nginx or proxy missing). */
  skipped: string[];
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
