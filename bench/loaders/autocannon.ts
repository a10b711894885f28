/**
 * autocannon as the load generator: programmatic, in the bench's own process
 * (load.ts), latency from its per-response log at microsecond resolution.
 * It costs more CPU per request than wrk and shares the machine's cores with
 * the system under test, which flatters a slower system; it stays for
 * comparison with older figures and for scenarios that read every response.
 */
import { runLoad } from '../load.js';
import { summarizeLatency } from '../stats.js';
import type { LoadFigures, LoadGenerator, LoadRun } from './loader.js';

export const autocannonLoader: LoadGenerator = {
  name: 'autocannon',
  effectiveSeconds: (durationSeconds) => durationSeconds,
  async run(run: LoadRun): Promise<LoadFigures> {
    const result = await runLoad({
      url: run.url,
      connections: run.connections,
      durationSeconds: run.durationSeconds,
    });
    const latency = summarizeLatency(result.log.okLatencies());
    return {
      loader: 'autocannon',
      responses: result.responses,
      elapsedMs: result.elapsedMs,
      requestsPerSecond: result.requestsPerSecond,
      p50: latency.p50,
      p99: latency.p99,
      p999: latency.p999,
      max: latency.max,
      errors: result.errors,
      errorKinds: result.errorKinds,
      non2xx: result.non2xx,
      loadgenCpuPercent: result.loadgenCpuPercent,
    };
  },
};
