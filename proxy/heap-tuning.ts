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
 * load V8 grows it to its maximum; at 128 MB a scavenge now and then finds a
 * large part of it alive (requests in flight and what they point to), copies
 * and promotes it, and the old generation fills up until a mark-compact:
 * the high mode of the proxy's RSS (300+ MB). Body bytes read from a slot
 * also wait for the next scavenge in one ArrayBuffer per socket read.
 * Measured with bench/ab.ts, B / A round by round (bench/README.md, Levers):
 * RSS 0.89 (small JSON, 50 connections) and 0.94 (64 KiB, 256 connections)
 * at CPU 0.97 and 0.90. Smaller caps cost CPU: 16 MB and 8 MB gave RSS 0.70–0.84
 * with large bodies but 1.15–1.19 × the CPU per small request (more
 * scavenges, each promoting the requests in flight, and more mark-compacts).
 */
export const PROXY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32'];

/**
 * `execArgv` with PROXY_NODE_FLAGS added, each flag that it does not set
 * already (a launcher's own value of the same flag wins).
 */
export function withProxyNodeFlags(execArgv: readonly string[]): string[] {
  const named = (flag: string) => flag.split('=', 1)[0]!;
  const present = new Set(execArgv.map(named));
  return [...execArgv, ...PROXY_NODE_FLAGS.filter((flag) => !present.has(named(flag)))];
}
