import { AggregatorRegistry, type Registry } from 'prom-client';
import { AdminError, type MetricsSource } from './admin-api.js';
import type { MetricsJson } from './cluster-protocol.js';
import type { WorkerPool } from './worker-pool.js';

/**
 * /metrics of a `PROXY_WORKERS > 1` proxy: the primary's own registry
 * (switches, store, slot state, its process) first, then every listening
 * worker's, aggregated by each metric's `aggregator` (see ProxyMetrics).
 */
export class ClusterMetrics implements MetricsSource {
  constructor(
    private readonly primary: Registry,
    private readonly pool: Pick<WorkerPool, 'ask'>,
    private readonly timeoutMs: number,
  ) {}

  get contentType(): string {
    return this.primary.contentType;
  }

  async metrics(): Promise<string> {
    const [own, answers] = await Promise.all([
      this.primary.getMetricsAsJSON(),
      this.pool.ask('metrics', this.timeoutMs),
    ]);
    const silent = answers.filter((a) => a.answer?.metrics === undefined);
    if (silent.length > 0) {
      // A partial sum would look like counters going backwards.
      const ids = silent.map((a) => `${a.worker.id} (pid ${a.worker.pid})`).join(', ');
      throw new AdminError(
        503,
        'workers_unresponsive',
        `no metrics from worker ${ids} within ${this.timeoutMs} ms`,
      );
    }
    const all: MetricsJson[] = [own];
    for (const { answer } of answers) if (answer?.metrics) all.push(answer.metrics);
    return AggregatorRegistry.aggregate(all).metrics();
  }
}
