/**
 * The benchmark's upstream app: a bare node:http server (no framework), so
 * that the proxies in front of it, not the app, are what the figures measure.
 * Run as its own process: `UPSTREAM_PORT=… UPSTREAM_SLOT=blue node dist/bench/upstream.js`.
 */
import { createServer, type Server } from 'node:http';
import { pathToFileURL } from 'node:url';

export const UPSTREAM_PATHS = {
  small: '/small',
  large: '/64k',
  health: '/health',
} as const;

/** The header through which the upstream says which slot really served a response. */
export const UPSTREAM_SLOT_HEADER = 'x-upstream-slot';

export const LARGE_BODY_BYTES = 64 * 1024;

export function createUpstreamServer(slot: string): Server {
  // Bodies and header lists are built once: the upstream should cost as little per request as possible.
  const small = Buffer.from(JSON.stringify({ ok: true, slot, items: [1, 2, 3] }));
  const large = Buffer.alloc(LARGE_BODY_BYTES, 'x');
  const health = Buffer.from(JSON.stringify({ status: 'healthy', slot }));
  // Flat [name, value, name, value…] lists: writeHead takes them without copying into an object.
  const json = (body: Buffer) => [
    'content-type',
    'application/json',
    'content-length',
    String(body.length),
    UPSTREAM_SLOT_HEADER,
    slot,
  ];
  const smallHeaders = json(small);
  const healthHeaders = json(health);
  const largeHeaders = [
    'content-type',
    'application/octet-stream',
    'content-length',
    String(large.length),
    UPSTREAM_SLOT_HEADER,
    slot,
  ];
  const notFound = Buffer.from('{"error":"not_found"}');
  const notFoundHeaders = json(notFound);

  const server = createServer((req, res) => {
    // Bodies (if any) are drained so keep-alive connections stay usable.
    req.resume();
    switch (req.url) {
      case UPSTREAM_PATHS.small:
        res.writeHead(200, smallHeaders).end(small);
        return;
      case UPSTREAM_PATHS.large:
        res.writeHead(200, largeHeaders).end(large);
        return;
      case UPSTREAM_PATHS.health:
        res.writeHead(200, healthHeaders).end(health);
        return;
      default:
        res.writeHead(404, notFoundHeaders).end(notFound);
    }
  });
  // Longer than any proxy's pooled-connection idle time, so the upstream never
  // closes a kept-alive connection the proxy is about to reuse.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 121_000;
  server.maxRequestsPerSocket = 0;
  return server;
}

function main(): void {
  const port = Number(process.env.UPSTREAM_PORT ?? '0');
  const slot = process.env.UPSTREAM_SLOT ?? 'blue';
  const server = createUpstreamServer(slot);
  server.listen(port, '127.0.0.1', () => {
    const address = server.address();
    const bound = typeof address === 'object' && address ? address.port : port;
    process.stdout.write(`${JSON.stringify({ upstream: 'listening', slot, port: bound })}\n`);
  });
  const shutdown = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
