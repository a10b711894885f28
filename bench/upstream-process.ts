import { UpstreamProcess } from '../harness/upstream-process.js';
import { startProcess } from './processes.js';

export type { UpstreamProcess };

/** Starts the bench upstream (bench/upstream.ts) as its own process on a free loopback port. */
export function startUpstream(slot: string): Promise<UpstreamProcess> {
  return UpstreamProcess.start(slot, { launch: startProcess });
}
