import { createHash } from 'node:crypto';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProxyProcess } from '../../../harness/proxy-process.js';

/**
 * The slot's answer body reaches the client through the forwarder's relay
 * (forward.ts relayBody): every byte in order, and a client that does not
 * read holds the slot back (its writes block) instead of the proxy buffering
 * the whole answer.
 */

const CHUNK = Buffer.alloc(64 * 1024, 'x');
const TOTAL_CHUNKS = 1024; // 64 MiB

interface BigSlot {
  server: Server;
  url: string;
  /** Bytes the slot has handed to its socket for the answer in progress. */
  written: () => number;
}

/** A slot whose /big answer is 64 MiB written as fast as its socket takes it (numbered chunks). */
async function startBigSlot(): Promise<BigSlot> {
  let written = 0;
  const server = createServer((req, res) => {
    req.resume();
    written = 0;
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    let sent = 0;
    const more = (): void => {
      while (sent < TOTAL_CHUNKS) {
        const chunk = Buffer.from(CHUNK);
        chunk.writeUInt32BE(sent, 0);
        sent++;
        written += chunk.length;
        if (!res.write(chunk)) {
          res.once('drain', more);
          return;
        }
      }
      res.end();
    };
    more();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}`, written: () => written };
}

function expectedDigest(): string {
  const hash = createHash('sha256');
  for (let i = 0; i < TOTAL_CHUNKS; i++) {
    const chunk = Buffer.from(CHUNK);
    chunk.writeUInt32BE(i, 0);
    hash.update(chunk);
  }
  return hash.digest('hex');
}

let slot: BigSlot;
let proxy: ProxyProcess;

beforeAll(async () => {
  slot = await startBigSlot();
  proxy = await ProxyProcess.start({
    blueUrl: slot.url,
    greenUrl: slot.url,
    env: { ACCESS_LOG: 'off', LOG_LEVEL: 'warn' },
  });
});

afterAll(async () => {
  await proxy?.stop();
  slot?.server.closeAllConnections();
  await new Promise<void>((resolve) => slot?.server.close(() => resolve()));
});

describe('the answer body relay', () => {
  it('holds the slot back while the client does not read, then delivers every byte in order', async () => {
    const digest = createHash('sha256');
    let received = 0;
    const done = new Promise<{ status: number; slotHeader: unknown }>((resolve, reject) => {
      const req = request(`${proxy.url}/big`, { agent: false }, (res) => {
        // Not read for a second: the client's socket, then the proxy's, then the slot's fill up.
        res.pause();
        setTimeout(() => {
          res.on('data', (chunk: Buffer) => {
            received += chunk.length;
            digest.update(chunk);
          });
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, slotHeader: res.headers['x-togather-slot'] }),
          );
          res.resume();
        }, 1000);
      });
      req.on('error', reject);
      req.end();
    });
    await new Promise((r) => setTimeout(r, 600));
    const early = slot.written();
    await new Promise((r) => setTimeout(r, 300));
    // The slot stopped once the socket buffers on the way were full: far from the whole answer.
    expect(slot.written()).toBe(early);
    expect(early).toBeLessThan((TOTAL_CHUNKS * CHUNK.length) / 2);
    const answer = await done;
    expect(answer).toEqual({ status: 200, slotHeader: 'blue' });
    expect(received).toBe(TOTAL_CHUNKS * CHUNK.length);
    expect(digest.digest('hex')).toBe(expectedDigest());
  });
});
