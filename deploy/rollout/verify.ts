import type { Slot } from '../../common/slot.js';
import { isHealthy, probe, sleep } from './app-probe.js';
import { delta, slotCounts, type SlotCounts } from './proxy-metrics.js';

export interface VerifyOptions {
  /** The proxy's public listener. */
  proxyUrl: string;
  slot: Slot;
  version: string;
  durationMs: number;
  intervalMs: number;
  /** Highest share of 5xx answers from the new slot the proxy may count. */
  maxErrorRatio: number;
  /** Fewer answers than this are too few to judge a ratio on. */
  minRequests: number;
  /** Consecutive failed probes that fail the verification (one may be a blip). */
  maxConsecutiveFailures: number;
  /** The proxy's Prometheus text. */
  metrics: () => Promise<string>;
  signal?: AbortSignal;
}

export type VerifyResult = { ok: true; detail: string } | { ok: false; reason: string };

/**
 * Watches the new slot through the proxy after the switch: every probe must
 * be answered by the new slot (X-Togather-Slot), `/health` 200 and `/version`
 * the deployed version, and the share of 5xx the proxy counted for the slot
 * must stay under the threshold. Fails at the first sustained problem, so a
 * rollback happens within the window rather than at its end.
 */
export async function verifyAfterSwitch(options: VerifyOptions): Promise<VerifyResult> {
  const base = options.proxyUrl.replace(/\/+$/, '');
  let before: SlotCounts | undefined;
  try {
    before = slotCounts(await options.metrics(), options.slot);
  } catch {
    before = undefined; // judged on probes alone if the metrics cannot be read
  }
  const deadline = Date.now() + options.durationMs;
  let consecutive = 0;
  let probes = 0;
  let lastCounts: SlotCounts = { total: 0, errors5xx: 0 };
  for (;;) {
    if (options.signal?.aborted) return { ok: false, reason: 'interrupted during verification' };
    const problem = await checkOnce(base, options);
    probes++;
    if (problem) {
      consecutive++;
      if (consecutive >= options.maxConsecutiveFailures) return { ok: false, reason: problem };
    } else {
      consecutive = 0;
    }
    if (before) {
      try {
        lastCounts = delta(slotCounts(await options.metrics(), options.slot), before);
        const ratio = lastCounts.total > 0 ? lastCounts.errors5xx / lastCounts.total : 0;
        if (lastCounts.total >= options.minRequests && ratio > options.maxErrorRatio) {
          return {
            ok: false,
            reason: `${lastCounts.errors5xx} of ${lastCounts.total} answers from ${options.slot} were 5xx (${percent(ratio)} > ${percent(options.maxErrorRatio)})`,
          };
        }
      } catch {
        // an unreadable metrics page does not fail a healthy slot; probes still count
      }
    }
    if (Date.now() >= deadline) break;
    await sleep(Math.min(options.intervalMs, Math.max(0, deadline - Date.now())), options.signal);
  }
  const ratioText = before
    ? `, ${lastCounts.errors5xx} 5xx of ${lastCounts.total} answers`
    : ', proxy metrics unreadable';
  return {
    ok: true,
    detail: `${probes} probes through the proxy answered by ${options.slot}${ratioText}`,
  };
}

async function checkOnce(base: string, options: VerifyOptions): Promise<string | undefined> {
  const health = await probe(`${base}/health`);
  if (health.status === null) return `proxy: ${health.summary}`;
  if (health.slotHeader !== options.slot) {
    return `/health through the proxy was answered by ${health.slotHeader ?? 'no slot'}, not ${options.slot}`;
  }
  if (!isHealthy(health)) return `/health through the proxy answered ${health.summary}`;
  const version = await probe(`${base}/version`);
  if (version.status !== 200) return `/version through the proxy answered ${version.summary}`;
  if (version.slotHeader !== options.slot) {
    return `/version through the proxy was answered by ${version.slotHeader ?? 'no slot'}, not ${options.slot}`;
  }
  if (version.body?.version !== options.version) {
    return `/version through the proxy reports ${String(version.body?.version)}, not ${options.version}`;
  }
  return undefined;
}

function percent(ratio: number): string {
  return `${(ratio * 100).toFixed(1)}%`;
}
