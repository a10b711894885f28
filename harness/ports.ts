/**
 * Ports for the tests and the benchmarks alike (this folder is the harness
 * both share): free ones to hand to a child process, closed ones for
 * "unreachable" cases, and waiting for a port to open.
 */
import { createConnection, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

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

/** True when something accepts TCP connections on 127.0.0.1:port. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Waits until the port accepts connections; fails after the timeout. */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await portOpen(port)) return;
    await sleep(25);
  }
  throw new Error(`port ${port} did not open in ${timeoutMs} ms`);
}
