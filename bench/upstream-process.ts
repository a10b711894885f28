import { fileURLToPath } from 'node:url';
import { freePort, waitForPort } from '../harness/ports.js';
import { startProcess, type ManagedProcess } from './processes.js';

const UPSTREAM_SCRIPT = fileURLToPath(new URL('./upstream.js', import.meta.url));

export interface UpstreamProcess {
  slot: string;
  port: number;
  url: string;
  process: ManagedProcess;
}

/** Starts the bench upstream (bench/upstream.ts) as its own process on a free loopback port. */
export async function startUpstream(slot: string): Promise<UpstreamProcess> {
  const port = await freePort();
  const child = startProcess(`upstream-${slot}`, process.execPath, [UPSTREAM_SCRIPT], {
    UPSTREAM_PORT: String(port),
    UPSTREAM_SLOT: slot,
  });
  await child.waitFor(/"upstream":"listening"/);
  await waitForPort(port);
  return { slot, port, url: `http://127.0.0.1:${port}`, process: child };
}
