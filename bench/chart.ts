/**
 * An SVG of a cutover run: latency over time (p50, p99, max per time bucket,
 * log scale) above throughput per slot, with a marker at each switch and a
 * tick at each request error. Plain SVG, no library: it opens in any browser.
 */
import type { ResponseLog } from './load.js';
import { percentile } from './stats.js';

export interface SwitchMark {
  /** ms since the run started. */
  at: number;
  to: string;
  ok: boolean;
}

export interface CutoverChartInput {
  title: string;
  log: ResponseLog;
  durationMs: number;
  switches: SwitchMark[];
  /** ms since the run started. */
  errors: number[];
  bucketMs?: number;
}

const WIDTH = 1100;
const LEFT = 70;
const RIGHT = 20;
const PLOT_WIDTH = WIDTH - LEFT - RIGHT;
const LATENCY_TOP = 50;
const LATENCY_HEIGHT = 260;
const THROUGHPUT_TOP = LATENCY_TOP + LATENCY_HEIGHT + 50;
const THROUGHPUT_HEIGHT = 180;
const HEIGHT = THROUGHPUT_TOP + THROUGHPUT_HEIGHT + 60;
const SLOT_COLORS: Record<string, string> = { blue: '#1f6fd1', green: '#1a9b4b', other: '#888' };

interface Bucket {
  p50: number;
  p99: number;
  max: number;
  /** req/s per slot name. */
  perSlot: Record<string, number>;
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function buckets(input: CutoverChartInput, bucketMs: number): Bucket[] {
  const count = Math.max(1, Math.ceil(input.durationMs / bucketMs));
  const latencies: number[][] = Array.from({ length: count }, () => []);
  const slots: Record<string, number>[] = Array.from({ length: count }, () => ({}));
  const { log } = input;
  for (let i = 0; i < log.length; i++) {
    const index = Math.min(count - 1, Math.floor(log.time[i]! / bucketMs));
    latencies[index]!.push(log.latency[i]!);
    // The proxy's header when present, else the upstream's (nginx adds none).
    const code = log.slot[i] || log.served[i];
    const name = code === 1 ? 'blue' : code === 2 ? 'green' : 'other';
    slots[index]![name] = (slots[index]![name] ?? 0) + 1000 / bucketMs;
  }
  return latencies.map((values, index) => {
    values.sort((a, b) => a - b);
    return {
      p50: percentile(values, 50),
      p99: percentile(values, 99),
      max: values.length > 0 ? values[values.length - 1]! : Number.NaN,
      perSlot: slots[index]!,
    };
  });
}

export function renderCutoverChart(input: CutoverChartInput): string {
  const bucketMs = input.bucketMs ?? 50;
  const data = buckets(input, bucketMs);
  const x = (ms: number) => LEFT + (ms / Math.max(1, input.durationMs)) * PLOT_WIDTH;
  const bucketX = (index: number) => x((index + 0.5) * bucketMs);

  // Latency: log scale from 0.1 ms to the next power of ten above the largest max.
  const largest = Math.max(1, ...data.map((b) => (Number.isFinite(b.max) ? b.max : 0)));
  const decades = Math.ceil(Math.log10(largest)) + 1; // from 10^-1
  const latencyY = (ms: number) => {
    const clamped = Math.max(0.1, ms);
    return LATENCY_TOP + LATENCY_HEIGHT * (1 - (Math.log10(clamped) + 1) / decades);
  };
  const peakRate = Math.max(1, ...data.flatMap((b) => Object.values(b.perSlot)));
  const rateY = (rate: number) => THROUGHPUT_TOP + THROUGHPUT_HEIGHT * (1 - rate / peakRate);

  const path = (points: [number, number][]) =>
    points
      .filter(([, y]) => Number.isFinite(y))
      .map(([px, py], i) => `${i === 0 ? 'M' : 'L'}${px.toFixed(1)},${py.toFixed(1)}`)
      .join('');
  const line = (pick: (b: Bucket) => number, color: string, width: number) =>
    `<path d="${path(data.map((b, i) => [bucketX(i), latencyY(pick(b))]))}" fill="none" stroke="${color}" stroke-width="${width}"/>`;
  const slotNames = [...new Set(data.flatMap((b) => Object.keys(b.perSlot)))].sort();
  const slotLines = slotNames.map(
    (slot) =>
      `<path d="${path(data.map((b, i) => [bucketX(i), rateY(b.perSlot[slot] ?? 0)]))}" fill="none" stroke="${SLOT_COLORS[slot] ?? '#888'}" stroke-width="1.5"/>`,
  );

  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${LEFT}" y="24" font-size="16" font-weight="bold">${escapeXml(input.title)}</text>`,
  );
  // Axes and grid.
  for (let d = 0; d < decades; d++) {
    const ms = 10 ** (d - 1);
    const y = latencyY(ms);
    parts.push(
      `<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${y}" y2="${y}" stroke="#eee"/>`,
      `<text x="${LEFT - 6}" y="${y + 4}" text-anchor="end">${ms} ms</text>`,
    );
  }
  for (let step = 0; step <= 4; step++) {
    const rate = (peakRate * step) / 4;
    const y = rateY(rate);
    parts.push(
      `<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${y}" y2="${y}" stroke="#eee"/>`,
      `<text x="${LEFT - 6}" y="${y + 4}" text-anchor="end">${Math.round(rate)}</text>`,
    );
  }
  const seconds = Math.floor(input.durationMs / 1000);
  const tickEvery = Math.max(1, Math.ceil(seconds / 20));
  for (let s = 0; s <= seconds; s += tickEvery) {
    parts.push(
      `<text x="${x(s * 1000)}" y="${THROUGHPUT_TOP + THROUGHPUT_HEIGHT + 18}" text-anchor="middle">${s} s</text>`,
    );
  }
  parts.push(
    `<text x="${LEFT}" y="${LATENCY_TOP - 8}">latency per ${bucketMs} ms (log scale): p50 grey, p99 black, max light; red ticks: request errors</text>`,
    `<text x="${LEFT}" y="${THROUGHPUT_TOP - 8}">responses per second by slot (blue, green); dashed lines: switches (colour = target, red = refused)</text>`,
  );
  // Switch markers across both panels.
  for (const mark of input.switches) {
    const color = mark.ok ? (SLOT_COLORS[mark.to] ?? '#888') : '#d11';
    parts.push(
      `<line x1="${x(mark.at)}" x2="${x(mark.at)}" y1="${LATENCY_TOP}" y2="${THROUGHPUT_TOP + THROUGHPUT_HEIGHT}" stroke="${color}" stroke-dasharray="3,3" stroke-opacity="0.6"/>`,
    );
  }
  parts.push(
    line((b) => b.max, '#bbb', 1),
    line((b) => b.p50, '#777', 1.5),
  );
  parts.push(
    line((b) => b.p99, '#000', 1.5),
    ...slotLines,
  );
  // One tick per pixel column: thousands of errors must not make thousands of elements.
  for (const ex of new Set(input.errors.map((at) => Math.round(x(at))))) {
    parts.push(
      `<line x1="${ex}" x2="${ex}" y1="${LATENCY_TOP + LATENCY_HEIGHT - 10}" y2="${LATENCY_TOP + LATENCY_HEIGHT}" stroke="#d11"/>`,
    );
  }
  parts.push(
    `<rect x="${LEFT}" y="${LATENCY_TOP}" width="${PLOT_WIDTH}" height="${LATENCY_HEIGHT}" fill="none" stroke="#999"/>`,
    `<rect x="${LEFT}" y="${THROUGHPUT_TOP}" width="${PLOT_WIDTH}" height="${THROUGHPUT_HEIGHT}" fill="none" stroke="#999"/>`,
    '</svg>',
  );
  return `${parts.join('\n')}\n`;
}
