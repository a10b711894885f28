/**
 * The headline comparison: each system against a baseline (nginx) on
 * throughput, p99 and CPU per request, as medians over rounds with their
 * range. Ratios are taken round by round (round i of a system against round i
 * of the baseline, which ran next to it), then summarized the same way.
 */
import { alignedMarkdownTable } from './markdown.js';
import { flagged, type RunFigures } from './measure.js';
import { fixed, median, ratio, thousands } from './stats.js';

export interface Spread {
  median: number;
  min: number;
  max: number;
}

/** Median and range of the finite values; NaN throughout when there are none. */
export function spread(values: number[]): Spread {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN };
  return { median: median(finite), min: Math.min(...finite), max: Math.max(...finite) };
}

export interface ComparisonRow {
  system: string;
  rounds: number;
  requestsPerSecond: Spread;
  requestsRatio: Spread;
  p99: Spread;
  p99Ratio: Spread;
  cpuPer10k: Spread;
  cpuRatio: Spread;
  rssBytes: Spread;
  errors: number;
  non2xx: number;
  errorKinds: Record<string, number>;
}

type RatioKey = 'requestsPerSecond' | 'p99' | 'cpuPer10k';

export function compareToBaseline(
  rounds: ReadonlyMap<string, RunFigures[]>,
  baseline: string,
): ComparisonRow[] {
  const base = rounds.get(baseline);
  const perRound = (list: RunFigures[], key: RatioKey) =>
    list.map((figures, i) => ratio(figures[key], base?.[i]?.[key]));
  return [...rounds].map(([system, list]) => {
    const errorKinds: Record<string, number> = {};
    for (const figures of list)
      for (const [kind, n] of Object.entries(figures.errorKinds))
        errorKinds[kind] = (errorKinds[kind] ?? 0) + n;
    return {
      system,
      rounds: list.length,
      requestsPerSecond: spread(list.map((f) => f.requestsPerSecond)),
      requestsRatio: spread(perRound(list, 'requestsPerSecond')),
      p99: spread(list.map((f) => f.p99)),
      p99Ratio: spread(perRound(list, 'p99')),
      cpuPer10k: spread(list.map((f) => f.cpuPer10k)),
      cpuRatio: spread(perRound(list, 'cpuPer10k')),
      rssBytes: spread(list.map((f) => f.rssBytes)),
      errors: list.reduce((total, f) => total + f.errors, 0),
      non2xx: list.reduce((total, f) => total + f.non2xx, 0),
      errorKinds,
    };
  });
}

/** "35,174 (34,012–36,880)"; the value alone when the rounds agree or there is one. */
export function spreadText(value: Spread, format: (n: number) => string): string {
  const mid = format(value.median);
  if (!Number.isFinite(value.median)) return mid;
  const low = format(value.min);
  const high = format(value.max);
  return low === high ? mid : `${mid} (${low}–${high})`;
}

const megabytes = (bytes: number) =>
  Number.isFinite(bytes) ? (bytes / 1024 / 1024).toFixed(0) : '–';

function errorsText(row: ComparisonRow): string {
  if (!flagged(row)) return '0';
  const kinds = Object.entries(row.errorKinds).map(([kind, n]) => `${kind} ${thousands(n)}`);
  if (row.non2xx > 0) kinds.push(`non-2xx ${thousands(row.non2xx)}`);
  return `${thousands(row.errors + row.non2xx)} ⚠ (${kinds.join(', ')})`;
}

/**
 * system | req/s | × nginx | p99 ms | × nginx | CPU s/10k | × nginx | RSS MB | errors,
 * medians over rounds with the range in parentheses.
 */
export function comparisonTable(rows: ComparisonRow[], baseline: string): string {
  const x = `× ${baseline}`;
  return alignedMarkdownTable(
    ['system', 'req/s', x, 'p99 ms', x, 'CPU s/10k', x, 'RSS MB', 'errors'],
    rows.map((row) => [
      flagged(row) ? `${row.system} ⚠` : row.system,
      spreadText(row.requestsPerSecond, thousands),
      spreadText(row.requestsRatio, (n) => fixed(n)),
      spreadText(row.p99, (n) => fixed(n)),
      spreadText(row.p99Ratio, (n) => fixed(n)),
      spreadText(row.cpuPer10k, (n) => fixed(n)),
      spreadText(row.cpuRatio, (n) => fixed(n)),
      spreadText(row.rssBytes, megabytes),
      errorsText(row),
    ]),
  );
}
