import { setFlagsFromString } from 'node:v8';

/**
 * V8 settings for a process that forwards traffic: applied at start, before
 * the first request, in the single proxy process and in every cluster worker.
 *
 * Allocation-site pretenuring off. Under many connections a request's objects
 * (messages, parsers, header objects) live across a young-generation GC or
 * two while it is in flight. If V8 samples that early in a run, it marks
 * their allocation sites "long-lived" and from then on allocates them straight
 * in the old generation: each second ~80 MB of short-lived objects is then
 * cleaned up by full mark-compacts instead of cheap scavenges. Measured in
 * the bench's memory run (256 connections, 300k requests, 16 runs each way):
 * with pretenuring, 9 runs went that way, RSS peaking at 203-213 MB instead
 * of 121-133 MB, with 14 to 17 mark-compacts in 15 s instead of none and
 * lower throughput; without it, none did.
 * The flag is read when V8 processes pretenuring feedback, so setting it at
 * run time works (and NODE_OPTIONS does not allow it).
 *
 * The young generation's size cannot be set here: V8 reads
 * --max-semi-space-size once, when the isolate's heap is configured, so
 * setting it from a running process changes nothing (measured: new space
 * still grows to 128 MB under allocation). It is in PROXY_NODE_FLAGS below,
 * which every launcher of the proxy puts on the command line.
 */
export function tuneHeapForProxying(): void {
  setFlagsFromString('--no-allocation-site-pretenuring');
}

/**
 * Node flags every proxy process starts with, on its command line: the
 * image's /app/server for `proxy`, `togather dev`, and the cluster's workers
 * (worker-pool.ts adds them to the primary's own flags).
 *
 * A young generation of at most 2 × 32 MB instead of V8's 2 × 64 MB. Under
 * load V8 grows it to its maximum, and at 128 MB the proxy's RSS has a high
 * mode (300+ MB) that the cap removes. Measured with bench/ab.ts, B / A
 * round by round (bench/README.md, Levers): CPU per request 0.97 and 1.00
 * (small JSON, 50 connections), 0.90 (64 KiB) and 1.00 (1 MiB, 256
 * connections); median RSS 0.89–1.03, no round above 276 MB against up to
 * 339 MB without it. Smaller caps cost CPU: 8 MB and 16 MB gave RSS 0.70–0.84
 * with 64 KiB answers but 1.15–1.19 × the CPU per small request (each
 * scavenge promotes the requests in flight; more mark-compacts follow).
 */
export const PROXY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32'];

/**
 * `execArgv` with PROXY_NODE_FLAGS added, each flag that neither it nor
 * NODE_OPTIONS sets already: an operator's own value wins (on the command
 * line a flag would override NODE_OPTIONS' value of it).
 */
export function withProxyNodeFlags(
  execArgv: readonly string[],
  nodeOptions: string | undefined,
): string[] {
  const named = (flag: string) => flag.split('=', 1)[0]!;
  const present = new Set([...execArgv, ...(nodeOptions ?? '').split(/\s+/)].map(named));
  return [...execArgv, ...PROXY_NODE_FLAGS.filter((flag) => !present.has(named(flag)))];
}
