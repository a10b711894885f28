import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { collectProcessMetrics } from '../common/process-metrics.js';
import type { SlotRegistry } from './state/slot-registry.js';
import { SLOTS, type Slot } from '../common/slot.js';
import { SWITCH_RESULTS } from './state/switch-record.js';
import { UPSTREAM_ERROR_REASONS, type UpstreamErrorReason } from './edge/upstream-errors.js';
import type { Upstream } from './edge/upstream.js';

/** Label values of `method`: the standard methods, everything else is OTHER. */
export const METRIC_METHODS = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'PATCH',
  'OPTIONS',
  'CONNECT',
  'TRACE',
  'OTHER',
] as const;
export type MetricMethod = (typeof METRIC_METHODS)[number];

/** Status codes Node can send are 100..999: one counter cell each. */
const FIRST_STATUS = 100;
const STATUS_SPAN = 900;
const OTHER_METHOD = METRIC_METHODS.length - 1;
const METHOD_INDEX: Readonly<Record<string, number>> = Object.assign(
  Object.create(null) as Record<string, number>,
  Object.fromEntries(METRIC_METHODS.slice(0, OTHER_METHOD).map((m, i) => [m, i])),
);

const DURATION_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

/**
 * What the scrape-time gauges read: the live slot state and the slots'
 * traffic (none in the primary of a cluster, whose workers carry it).
 */
export interface ProxyMetricsSources {
  registry: SlotRegistry;
  upstreams?: Readonly<Record<Slot, Upstream>>;
}

export interface ProxyMetricsOptions {
  /** Register prom-client's process and Node.js metrics too (default true). */
  processMetrics?: boolean;
}

type RequestLabels = { slot: Slot; method: MetricMethod; code: string };

/**
 * The proxy's Prometheus metrics over a registry the caller owns (the admin
 * listener serves it). The hot path only adds to a typed array: request
 * counts are handed to prom-client when a scrape asks for them, and the
 * gauges of slot state and traffic are read at scrape time too.
 *
 * With PROXY_WORKERS > 1 every process has its own and the primary sums them
 * (prom-client's AggregatorRegistry.aggregate, primary first): counts, the
 * histogram and traffic add up; the slot state and store gauges are the
 * primary's own (`first`: it owns the store, the workers follow it); a slot
 * drains if any worker drains it (`max`).
 */
export class ProxyMetrics {
  readonly registry: Registry;
  /** togather_proxy_switches_total{result}: counted by the switch service. */
  readonly switches: Counter<'result'>;

  private readonly requests: Counter<'slot' | 'method' | 'code'>;
  private readonly durations: Histogram<'slot'>;
  private readonly upstreamErrors: Counter<'slot' | 'reason'>;
  private readonly storeUp: Gauge;
  private readonly droppedConnections: Counter;
  private readonly slotLabels: Readonly<Record<Slot, { slot: Slot }>> = {
    blue: { slot: 'blue' },
    green: { slot: 'green' },
  };
  /** Requests not yet handed to the counter, by (slot, method, status). */
  private readonly pending = new Float64Array(SLOTS.length * METRIC_METHODS.length * STATUS_SPAN);
  private readonly cellLabels = new Map<number, RequestLabels>();
  private sources: ProxyMetricsSources | null = null;

  constructor(registry: Registry, options: ProxyMetricsOptions = {}) {
    this.registry = registry;
    const registers = [registry];

    this.requests = new Counter({
      name: 'togather_proxy_requests_total',
      help: 'Requests answered by the public listener, by slot, method and status code (499: the client left first).',
      labelNames: ['slot', 'method', 'code'],
      registers,
      collect: () => this.flushRequests(),
    });
    this.durations = new Histogram({
      name: 'togather_proxy_request_duration_seconds',
      help: 'Time from a request reaching the proxy to its answer being written, by slot.',
      labelNames: ['slot'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    const inflight: Gauge<'slot'> = new Gauge({
      name: 'togather_proxy_inflight_requests',
      help: 'Requests forwarded to a slot and not finished yet.',
      labelNames: ['slot'],
      registers,
      collect: () => {
        for (const slot of SLOTS)
          inflight.set({ slot }, this.sources?.upstreams?.[slot].inflight ?? 0);
      },
    });
    const websockets: Gauge<'slot'> = new Gauge({
      name: 'togather_proxy_open_websockets',
      help: 'WebSockets proxied to a slot and still open.',
      labelNames: ['slot'],
      registers,
      collect: () => {
        for (const slot of SLOTS)
          websockets.set({ slot }, this.sources?.upstreams?.[slot].openWebSockets ?? 0);
      },
    });
    const draining: Gauge<'slot'> = new Gauge({
      name: 'togather_proxy_slot_draining',
      help: '1 while a slot that lost traffic is being drained.',
      labelNames: ['slot'],
      registers,
      aggregator: 'max',
      collect: () => {
        for (const slot of SLOTS)
          draining.set({ slot }, this.sources?.upstreams?.[slot].draining ? 1 : 0);
      },
    });
    const active: Gauge<'slot'> = new Gauge({
      name: 'togather_proxy_active_slot',
      help: '1 on the slot that receives traffic, 0 on the other.',
      labelNames: ['slot'],
      registers,
      aggregator: 'first',
      collect: () => {
        const current = this.sources?.registry.current.active;
        for (const slot of SLOTS) active.set({ slot }, slot === current ? 1 : 0);
      },
    });
    const epoch: Gauge = new Gauge({
      name: 'togather_proxy_slot_epoch',
      help: 'Epoch of the slot state this proxy applies.',
      registers,
      aggregator: 'first',
      collect: () => {
        epoch.set(this.sources?.registry.current.epoch ?? 0);
      },
    });
    this.switches = new Counter({
      name: 'togather_proxy_switches_total',
      help: 'Switch attempts through this proxy, by result.',
      labelNames: ['result'],
      registers,
    });
    this.upstreamErrors = new Counter({
      name: 'togather_proxy_upstream_errors_total',
      help: 'Failed upstream requests, by slot and reason.',
      labelNames: ['slot', 'reason'],
      registers,
    });
    this.storeUp = new Gauge({
      name: 'togather_proxy_store_up',
      help: '1 when the slot store (Redis or file) is reachable.',
      registers,
      aggregator: 'first',
    });
    this.droppedConnections = new Counter({
      name: 'togather_proxy_dropped_connections_total',
      help: 'Client connections refused because MAX_CONNECTIONS was reached.',
      registers,
    });

    // Every bounded series exists from the start, so rates and alerts see zeros.
    for (const slot of SLOTS) {
      this.durations.zero({ slot });
      for (const reason of UPSTREAM_ERROR_REASONS) this.upstreamErrors.inc({ slot, reason }, 0);
    }
    for (const result of SWITCH_RESULTS) this.switches.inc({ result }, 0);
    this.storeUp.set(0);

    if (options.processMetrics ?? true) collectProcessMetrics(registry);
  }

  /** The Prometheus exposition content type (admin /metrics). */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus exposition text (admin /metrics). */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  /** Connects the scrape-time gauges to the live slot state and traffic. */
  attach(sources: ProxyMetricsSources): void {
    this.sources = sources;
  }

  setStoreUp(up: boolean): void {
    this.storeUp.set(up ? 1 : 0);
  }

  /** One finished request; the hot path's only metrics call. */
  observeRequest(slot: Slot, method: string | undefined, status: number, seconds: number): void {
    this.countRequest(slot, method, status);
    this.durations.observe(this.slotLabels[slot], seconds);
  }

  /** Counts a request without a duration (WebSocket handshakes). */
  countRequest(slot: Slot, method: string | undefined, status: number): void {
    const m = (method !== undefined ? METHOD_INDEX[method] : undefined) ?? OTHER_METHOD;
    const s = status >= FIRST_STATUS && status < FIRST_STATUS + STATUS_SPAN ? status : 999;
    const cell =
      ((slot === 'blue' ? 0 : 1) * METRIC_METHODS.length + m) * STATUS_SPAN + (s - FIRST_STATUS);
    this.pending[cell]! += 1;
  }

  countUpstreamError(slot: Slot, reason: UpstreamErrorReason): void {
    this.upstreamErrors.inc({ slot, reason });
  }

  countDroppedConnection(): void {
    this.droppedConnections.inc();
  }

  private flushRequests(): void {
    const pending = this.pending;
    for (let cell = 0; cell < pending.length; cell++) {
      const count = pending[cell]!;
      if (count === 0) continue;
      pending[cell] = 0;
      this.requests.inc(this.labelsOf(cell), count);
    }
  }

  private labelsOf(cell: number): RequestLabels {
    let labels = this.cellLabels.get(cell);
    if (labels === undefined) {
      const status = (cell % STATUS_SPAN) + FIRST_STATUS;
      const rest = Math.floor(cell / STATUS_SPAN);
      labels = {
        slot: SLOTS[Math.floor(rest / METRIC_METHODS.length)]!,
        method: METRIC_METHODS[rest % METRIC_METHODS.length]!,
        code: String(status),
      };
      this.cellLabels.set(cell, labels);
    }
    return labels;
  }
}
