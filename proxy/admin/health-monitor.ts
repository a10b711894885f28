import type { Logger } from 'pino';
import { probeHealth, describeProbe, type HealthProbe } from './health-gate.js';
import { SLOTS, type Slot } from '../../common/slot.js';

/** The last known health of one slot, for /admin/status. */
export interface SlotHealthView {
  /** null until the first probe has answered or failed. */
  healthy: boolean | null;
  version: string | null;
  status: string | null;
  checked_at: string | null;
  /** What the last failed probe saw. */
  error: string | null;
}

export interface SlotHealthMonitorOptions {
  /** Health URL of each slot. */
  urls: Record<Slot, string>;
  intervalMs: number;
  timeoutMs: number;
  /** Trust for https slots (UPSTREAM_CA_FILE's PEM), as the data plane has it. */
  ca?: string | undefined;
  logger: Logger;
}

/**
 * Polls both slots' health in the background so /admin/status can show
 * health and version without a request waiting on a slot.
 */
export class SlotHealthMonitor {
  private readonly views: Record<Slot, SlotHealthView>;
  private readonly polling = new Set<Slot>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: SlotHealthMonitorOptions) {
    const empty = (): SlotHealthView => ({
      healthy: null,
      version: null,
      status: null,
      checked_at: null,
      error: null,
    });
    this.views = { blue: empty(), green: empty() };
  }

  /** Starts polling; resolves when the first probe of both slots has answered or failed. */
  start(): Promise<void> {
    if (this.timer) return Promise.resolve();
    const first = this.pollAll();
    this.timer = setInterval(() => void this.pollAll(), this.options.intervalMs);
    this.timer.unref();
    return first;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  view(slot: Slot): SlotHealthView {
    return { ...this.views[slot] };
  }

  /** Takes a fresher result (a health gate's probe) than the poll would have. */
  record(slot: Slot, probe: HealthProbe): void {
    const before = this.views[slot].healthy;
    this.views[slot] = {
      healthy: probe.ok,
      version: probe.version ?? (probe.ok ? null : this.views[slot].version),
      status: probe.status ?? null,
      checked_at: new Date().toISOString(),
      error: probe.ok ? null : describeProbe(probe),
    };
    if (before !== probe.ok && !(before === null && probe.ok)) {
      const fields = { slot, healthy: probe.ok, seen: describeProbe(probe) };
      if (probe.ok) this.options.logger.info(fields, 'slot healthy again');
      else this.options.logger.warn(fields, 'slot unhealthy');
    }
  }

  private async pollAll(): Promise<void> {
    await Promise.all(SLOTS.map((slot) => this.poll(slot)));
  }

  private async poll(slot: Slot): Promise<void> {
    // A slot slower than the interval is not probed twice at once.
    if (this.polling.has(slot)) return;
    this.polling.add(slot);
    try {
      const { urls, timeoutMs, ca } = this.options;
      this.record(slot, await probeHealth(urls[slot], timeoutMs, ca));
    } finally {
      this.polling.delete(slot);
    }
  }
}
