import type { Slot } from '../../common/slot.js';

/** Requests the proxy answered for one slot, from `togather_proxy_requests_total`. */
export interface SlotCounts {
  total: number;
  errors5xx: number;
}

/**
 * Sums `togather_proxy_requests_total{slot=...,code=...}` from the proxy's
 * Prometheus text for one slot: all codes and the 5xx ones.
 */
export function slotCounts(metricsText: string, slot: Slot): SlotCounts {
  const counts: SlotCounts = { total: 0, errors5xx: 0 };
  for (const line of metricsText.split('\n')) {
    if (!line.startsWith('togather_proxy_requests_total{')) continue;
    const close = line.lastIndexOf('}');
    const labels = parseLabels(line.slice(line.indexOf('{') + 1, close));
    if (labels.slot !== slot) continue;
    const value = Number(
      line
        .slice(close + 1)
        .trim()
        .split(/\s+/)[0],
    );
    if (!Number.isFinite(value)) continue;
    counts.total += value;
    if (labels.code?.startsWith('5')) counts.errors5xx += value;
  }
  return counts;
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const match of text.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
    labels[match[1]!] = match[2]!;
  }
  return labels;
}

/** The counts between two readings (a proxy restart resets counters: never negative). */
export function delta(after: SlotCounts, before: SlotCounts): SlotCounts {
  return {
    total: Math.max(0, after.total - before.total),
    errors5xx: Math.max(0, after.errors5xx - before.errors5xx),
  };
}

export async function fetchMetrics(adminUrl: string, timeoutMs = 5_000): Promise<string> {
  const response = await fetch(`${adminUrl.replace(/\/+$/, '')}/metrics`, {
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!response.ok) throw new Error(`GET /metrics answered ${response.status}`);
  return response.text();
}
