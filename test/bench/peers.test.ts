import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PEERS, checkPeers } from '../../bench/peers/index.js';
import { checkPeer, type RunningPeer } from '../../bench/peers/peer.js';
import { portOpen } from '../../harness/ports.js';
import {
  HUGE_BODY_BYTES,
  UPSTREAM_PATHS,
  createUpstreamServer,
  smallBody,
} from '../../bench/upstream.js';
import { stopAll } from '../../bench/processes.js';
import { freePort } from '../../harness/ports.js';
import { httpRequest } from '../../harness/http-client.js';

/**
 * Each installed peer of the bench (nginx, HAProxy, Caddy), started with its
 * generated configuration in front of the bench's real upstream, passes the
 * body and the upstream's headers through and adds what the togather proxy
 * adds (X-Togather-Slot, X-Request-Id); a peer whose binary is missing turns
 * into the skip line instead of an error.
 */

let upstream: Server;
let upstreamPort: number;

beforeAll(async () => {
  upstreamPort = await freePort();
  upstream = createUpstreamServer('blue');
  await new Promise<void>((resolve) => upstream.listen(upstreamPort, '127.0.0.1', resolve));
});

afterAll(async () => {
  upstream.closeAllConnections();
  await new Promise((resolve) => upstream.close(resolve));
  // The peers' and wrk's temp dirs (configs, scripts) and anything still running.
  await stopAll();
});

describe('bench upstream', () => {
  it.each([
    [UPSTREAM_PATHS.small, smallBody('blue').length],
    [UPSTREAM_PATHS.huge, HUGE_BODY_BYTES],
  ])('answers %s with Content-Length and the /chunked path in chunks', async (path, bytes) => {
    const length = await httpRequest(`http://127.0.0.1:${upstreamPort}${path}`);
    expect(length.headers['content-length']).toBe(String(bytes));
    expect(length.headers['transfer-encoding']).toBeUndefined();
    expect(length.body.length).toBe(bytes);
    const chunked = await httpRequest(`http://127.0.0.1:${upstreamPort}${path}/chunked`);
    expect(chunked.headers['content-length']).toBeUndefined();
    expect(chunked.headers['transfer-encoding']).toBe('chunked');
    expect(chunked.body).toBe(length.body);
  });
});

const installed = checkPeers(PEERS.map((peer) => peer.name));

describe.each(installed)('$peer.name', (status) => {
  let peer: RunningPeer | undefined;

  afterAll(async () => {
    await peer?.stop();
  });

  it.runIf(status.available)(
    'relays bodies in both framings and adds X-Togather-Slot',
    async () => {
      if (!status.available) return;
      peer = await status.peer.start({
        upstreamPort,
        port: await freePort(),
        binary: status.binary,
        slot: 'green',
      });
      expect(peer.pids().length).toBeGreaterThanOrEqual(1);

      const chunked = await httpRequest(`${peer.url}${UPSTREAM_PATHS.small}/chunked`);
      expect(chunked.status).toBe(200);
      expect(chunked.headers['x-togather-slot']).toBe('green');
      expect(chunked.headers['x-upstream-slot']).toBe('blue');
      expect(chunked.headers['x-request-id']).toMatch(/\S{8,}/);
      expect(chunked.headers['transfer-encoding']).toBe('chunked');
      expect(chunked.body).toBe(smallBody('blue').toString());

      const length = await httpRequest(`${peer.url}${UPSTREAM_PATHS.small}`);
      expect(length.status).toBe(200);
      expect(length.headers['x-togather-slot']).toBe('green');
      expect(length.headers['content-length']).toBe(String(smallBody('blue').length));
      expect(length.body).toBe(smallBody('blue').toString());

      const huge = await httpRequest(`${peer.url}${UPSTREAM_PATHS.huge}/chunked`);
      expect(huge.status).toBe(200);
      expect(huge.headers['x-togather-slot']).toBe('green');
      expect(huge.body).toBe('y'.repeat(HUGE_BODY_BYTES));

      // What reaches the upstream: the headers the togather proxy sets too.
      const sent = JSON.parse(
        (await httpRequest(`${peer.url}${UPSTREAM_PATHS.headers}`)).body,
      ) as Record<string, string>;
      expect(sent['x-forwarded-for']).toBe('127.0.0.1');
      expect(sent['x-forwarded-proto']).toBe('http');
      expect(sent['x-request-id']).toMatch(/\S{8,}/);

      const port = peer.port;
      await peer.stop();
      peer = undefined;
      expect(await portOpen(port)).toBe(false);
    },
  );

  it(`is skipped with an install hint when its binary is missing`, () => {
    const missing = checkPeer(status.peer, '/nonexistent/bin/' + status.peer.command);
    expect(missing).toEqual({
      peer: status.peer,
      available: false,
      skip: `${status.peer.name}: not installed at /nonexistent/bin/${status.peer.command} (${status.peer.installHint}); skipped`,
    });
  });
});

describe('peer lookup', () => {
  it('names the Debian package in the skip line', () => {
    const lines = PEERS.map((peer) => checkPeer(peer, `/nonexistent/${peer.command}`)).map((s) =>
      s.available ? 'available' : s.skip,
    );
    expect(lines).toEqual([
      'nginx: not installed at /nonexistent/nginx (apt-get install nginx-light); skipped',
      'haproxy: not installed at /nonexistent/haproxy (apt-get install haproxy); skipped',
      'caddy: not installed at /nonexistent/caddy (apt-get install caddy); skipped',
    ]);
  });

  it('skips a binary that is there but reports no version', () => {
    // /bin/false runs and fails: present, but not the peer.
    const status = checkPeer(PEERS[1]!, '/bin/false');
    expect(status).toMatchObject({
      available: false,
      skip: 'haproxy: /bin/false did not report a version (apt-get install haproxy); skipped',
    });
  });

  it('leaves out names it does not know', () => {
    expect(checkPeers(['nginx', 'squid']).map((s) => s.peer.name)).toEqual(['nginx']);
  });
});
