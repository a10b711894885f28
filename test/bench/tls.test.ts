import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findH2load, parseH2loadOutput, runH2load } from '../../bench/loaders/h2load.js';
import { findWrk, wrkLoader } from '../../bench/loaders/wrk.js';
import { renderNginxConfig, startNginx } from '../../bench/peers/nginx.js';
import { stopAll } from '../../bench/processes.js';
import { selfSignedCertificate } from '../../bench/tls-certificate.js';
import { UPSTREAM_PATHS, createUpstreamServer, eventsBody } from '../../bench/upstream.js';
import { freePort } from '../../harness/ports.js';

/**
 * The TLS and compression scenarios' tools against a real nginx: its TLS
 * listener (HTTP/2 and HTTP/1.1 on one certificate), h2load's summary read,
 * wrk opening a connection per request, nginx's gzip, the compressible body.
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
  await stopAll();
});

function getHttps(
  url: string,
  ca: Buffer,
): Promise<{ status: number; alpn: string | false | null }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca }, (res) => {
      res.resume();
      const alpn = (res.socket as TLSSocket).alpnProtocol;
      res.on('end', () => resolve({ status: res.statusCode ?? 0, alpn }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('bench TLS tools', () => {
  it('reads an h2load summary, and refuses output without one', () => {
    const output = `finished in 2.00s, 12345.50 req/s, 1.20MB/s
requests: 24691 total, 24741 started, 24691 done, 24680 succeeded, 11 failed, 2 errored, 1 timeout
status codes: 24680 2xx, 0 3xx, 10 4xx, 0 5xx
traffic: 2.40MB (2516582) total, 1.10MB (1153433) headers (space savings 90.12%), 1.00MB (1048576) data
                     min         max         mean         sd        +/- sd
time for request:      210us     12.50ms      3.90ms      1.10ms    70.00%
`;
    const figures = parseH2loadOutput(output)!;
    expect(figures.requestsPerSecond).toBe(12345.5);
    expect(figures.responses).toBe(24690);
    expect(figures.non2xx).toBe(10);
    expect(figures.errorKinds).toEqual({ failed: 1, errored: 2, timeout: 1 });
    expect(figures.errors).toBe(4);
    expect(figures.bytes).toBe(2516582);
    expect(figures.max).toBe(12.5);
    expect(figures.meanMs).toBe(3.9);
    expect(figures.elapsedMs).toBe(2000);
    expect(parseH2loadOutput('h2load: connection refused\n')).toBeUndefined();
  });

  it('renders nginx with TLS (http2, TLS 1.2+, no session reuse) and gzip only when asked', () => {
    const base = { dir: '/tmp/x', port: 1, upstreamPort: 2, workers: 1, slot: 'blue' };
    expect(renderNginxConfig(base)).not.toMatch(/ssl|gzip/);
    const conf = renderNginxConfig({
      ...base,
      tls: { port: 3, certFile: '/c.pem', keyFile: '/k.pem' },
      gzip: true,
    });
    expect(conf).toContain('listen 127.0.0.1:3 ssl http2');
    expect(conf).toContain('ssl_protocols TLSv1.2 TLSv1.3;');
    expect(conf).toContain('ssl_session_tickets off;');
    expect(conf).toContain('gzip_types application/json application/ld+json;');
  });

  it('measures nginx over HTTPS with h2load (HTTP/2) and wrk (a handshake per request)', async () => {
    const certificate = selfSignedCertificate();
    const nginx = await startNginx({ upstreamPort, tls: certificate });
    const answer = await getHttps(`${nginx.tlsUrl!}/small`, readFileSync(certificate.certFile));
    expect(answer.status).toBe(200); // https offers no ALPN: nginx serves HTTP/1.1 without it

    const h2load = findH2load();
    expect(h2load, 'h2load (apt-get install nghttp2-client)').toBeDefined();
    const h2 = await runH2load(h2load!, {
      url: `${nginx.tlsUrl!}/small`,
      connections: 4,
      durationSeconds: 1,
    });
    expect(h2.errors).toBe(0);
    expect(h2.non2xx).toBe(0);
    expect(h2.responses).toBeGreaterThan(50);

    const wrk = findWrk();
    expect(wrk.binary, 'wrk (apt-get install wrk)').toBeDefined();
    const closing = await wrkLoader(wrk.binary!).run({
      url: `${nginx.tlsUrl!}/small`,
      connections: 4,
      durationSeconds: 1,
      headers: { connection: 'close' },
    });
    expect(closing.errors).toBe(0);
    expect(closing.responses).toBeGreaterThan(20);
    await nginx.stop();
  });

  it('serves a compressible JSON page, which nginx with gzip on shrinks', async () => {
    const body = eventsBody('blue');
    expect(body.length).toBeGreaterThan(12 * 1024);
    expect(body.length).toBeLessThan(20 * 1024);
    const nginx = await startNginx({ upstreamPort, gzip: true });
    const res = await fetch(`${nginx.url}${UPSTREAM_PATHS.events}`, {
      headers: { 'accept-encoding': 'gzip' },
    });
    // fetch decodes gzip itself; the header says it was sent compressed.
    expect(res.headers.get('content-encoding')).toBe('gzip');
    expect(Buffer.from(await res.arrayBuffer()).equals(body)).toBe(true);
    await nginx.stop();
  });
});
