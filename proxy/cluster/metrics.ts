import { AggregatorRegistry, type Registry } from 'prom-client';
import { ADMIN_ERRORS } from '../admin/errors.js';
import type { MetricsSource } from '../admin/routes/operations.js';
import type { MetricsJson } from './protocol.js';
import type { WorkerPool } from './worker-pool.js';

/**
 * /metrics of a `PROXY_WORKERS > 1` proxy: the primary's own registry
 * (switches, store, slot state, its process) first, then every listening
 * worker's, aggregated by each metric's `aggregator` (see ProxyMetrics).
 *
 * Counters and histograms must not go backwards when a worker dies and a
 * fresh one replaces it (Prometheus would read a reset of the whole sum):
 * the totals a worker last reported are kept as retired totals and added to
 * every later sum. What it counted after its last scrape is lost with it.
 */
export class ClusterMetrics implements MetricsSource {
  /** Each live worker's counters and histograms as of its latest answer, by worker id. */
  private readonly latest = new Map<number, MetricsJson>();
  /** The counters and histograms of every worker that has exited, summed. */
  private retired: MetricsJson = [];
  /** Folding an exited worker into `retired` (prom-client aggregates asynchronously). */
  private retiring: Promise<void> = Promise.resolve();

  constructor(
    private readonly primary: Registry,
    private readonly pool: Pick<WorkerPool, 'ask'>,
    private readonly timeoutMs: number,
  ) {}

  get contentType(): string {
    return this.primary.contentType;
  }

  /** A worker exited: its last reported counts become part of the retired totals. */
  retire(workerId: number): void {
    const last = this.latest.get(workerId);
    this.latest.delete(workerId);
    if (last === undefined) return;
    this.retiring = this.retiring.then(async () => {
      this.retired = await AggregatorRegistry.aggregate([this.retired, last]).getMetricsAsJSON();
    });
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
      throw ADMIN_ERRORS.workersUnresponsive.create(ids, this.timeoutMs);
    }
    const all: MetricsJson[] = [own];
    for (const { worker, answer } of answers) {
      if (answer?.metrics === undefined) continue;
      all.push(answer.metrics);
      this.latest.set(worker.id, onlyTotals(answer.metrics));
    }
    await this.retiring;
    if (this.retired.length > 0) all.push(this.retired);
    return AggregatorRegistry.aggregate(all).metrics();
  }
}

/** The metrics whose worker values add up to a running total: summed counters and histograms. */
function onlyTotals(metrics: MetricsJson): MetricsJson {
  return metrics.filter((metric) => {
    // prom-client's typings declare a numeric enum; at run time `type` is 'counter', 'gauge'...
    const type = metric.type as unknown as string;
    return (type === 'counter' || type === 'histogram') && (metric.aggregator ?? 'sum') === 'sum';
  });
}
