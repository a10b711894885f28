import { createServer } from 'node:net';

/*
 * Ports handed to child processes are picked below the kernel's ephemeral
 * range (32768+ here). Every port-0 listener of the suite and every outbound
 * connection's local port lands in that range, so a port picked from it could
 * be taken by a parallel test between the pick and the child's bind (seen in
 * CI: `togather dev` refused a port "already in use"). Below it, only another
 * random pick can collide, and the bind check makes that a narrow window.
 *
 * freePort() uses 10000-19999 and closedPort() 20000-31999, so a port meant to
 * stay closed is never one a test has just been told to listen on.
 */
const FREE_RANGE = { from: 10_000, size: 10_000 };
const CLOSED_RANGE = { from: 20_000, size: 12_000 };

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function pickPort(range: { from: number; size: number }, avoid: Set<number>) {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = range.from + Math.floor(Math.random() * range.size);
    if (!avoid.has(port) && (await canListen(port))) return port;
  }
  throw new Error(`no free port found in ${range.from}-${range.from + range.size - 1}`);
}

/** A TCP port free on 127.0.0.1 right now, outside the ephemeral range. */
export function freePort(): Promise<number> {
  return pickPort(FREE_RANGE, new Set());
}

/** `count` distinct free ports. */
export async function freePorts(count: number): Promise<number[]> {
  const picked = new Set<number>();
  while (picked.size < count) picked.add(await pickPort(FREE_RANGE, picked));
  return [...picked];
}

/** A loopback port where nothing listens, for "unreachable" cases. */
export function closedPort(): Promise<number> {
  return pickPort(CLOSED_RANGE, new Set());
}
