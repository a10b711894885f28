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
 * setting it from a running process changes nothing, even before the first
 * request (measured: new space still grows to 128 MB under allocation,
 * against 32 MB with the same flag on the command line or in NODE_OPTIONS).
 * It would have to go on every command line the proxy starts with.
 */
export function tuneHeapForProxying(): void {
  setFlagsFromString('--no-allocation-site-pretenuring');
}
