/**
 * The benchmark's upstream app: a bare node:http server (no framework), so
 * that the proxies in front of it, not the app, are what the figures measure.
 * Run as its own process: `UPSTREAM_PORT=… UPSTREAM_SLOT=blue node dist/bench/upstream.js`.
 *
 * Every body comes in two framings: with Content-Length (`/small`, `/64k`,
 * `/1m`) and chunked (the same path plus `/chunked`), since a proxy's cost
 * differs between relaying a known length and re-framing chunks.
 */
import { createServer, type ServerResponse, type Server } from 'node:http';
import { pathToFileURL } from 'node:url';

export const UPSTREAM_PATHS = {
  small: '/small',
  large: '/64k',
  huge: '/1m',
  health: '/health',
  /** A compressible JSON list of about 16 KiB (the compression scenario). */
  events: '/events.json',
  /** The request's headers as JSON: what a proxy in front sends (for tests, not measured). */
  headers: '/headers',
} as const;

export type Framing = 'length' | 'chunked';
export const FRAMINGS: readonly Framing[] = ['chunked', 'length'];

export const BODIES = {
  small: { label: 'small JSON', path: UPSTREAM_PATHS.small },
  '64k': { label: '64 KiB', path: UPSTREAM_PATHS.large },
  '1m': { label: '1 MiB streamed', path: UPSTREAM_PATHS.huge },
} as const;
export type BodyName = keyof typeof BODIES;
export const BODY_NAMES = Object.keys(BODIES) as BodyName[];

/** The upstream path of a body in a framing. */
export function bodyPath(body: BodyName, framing: Framing): string {
  return framing === 'chunked' ? `${BODIES[body].path}/chunked` : BODIES[body].path;
}

/** The header through which the upstream says which slot really served a response. */
export const UPSTREAM_SLOT_HEADER = 'x-upstream-slot';

export const LARGE_BODY_BYTES = 64 * 1024;
export const HUGE_BODY_BYTES = 1024 * 1024;
/** The 1 MiB body goes out in pieces of this size, each waiting for the socket to drain. */
const HUGE_PIECE_BYTES = 64 * 1024;

/** The small JSON body a slot answers, byte for byte (tests compare against it). */
export function smallBody(slot: string): Buffer {
  return Buffer.from(JSON.stringify({ ok: true, slot, items: [1, 2, 3] }));
}

/**
 * A page of events as the app lists them (JSON-LD, about 16 KiB): text that
 * compresses like real API answers, unlike the filler bytes of /64k.
 */
export function eventsBody(slot: string): Buffer {
  const data = Array.from({ length: 40 }, (_, i) => ({
    '@context': 'https://schema.org',
    '@type': 'Event',
    '@id': `https://events.togather.test/api/v1/events/${(0x1000 + i * 7919).toString(16)}-${slot}`,
    name: `Community event ${i + 1}: ${['music', 'talk', 'market', 'workshop'][i % 4]} in the park`,
    startDate: `2030-0${(i % 9) + 1}-1${i % 10}T18:00:00Z`,
    location: {
      '@type': 'Place',
      name: `Hall ${i % 5}`,
      address: `${i + 1} Main Street, Springfield`,
    },
    organizer: { '@type': 'Organization', name: `Arts Council ${i % 3}` },
    description: `An evening of ${['songs', 'ideas', 'local food', 'hands-on craft'][i % 4]} for everyone; free entry, doors open at 17:30.`,
  }));
  return Buffer.from(JSON.stringify({ data, next_cursor: null, limit: 40 }));
}

/** Writes `pieces` × `piece` with back-pressure, then ends the response. */
function streamPieces(res: ServerResponse, piece: Buffer, pieces: number): void {
  let written = 0;
  const next = () => {
    while (written < pieces) {
      written++;
      if (!res.write(piece)) {
        res.once('drain', next);
        return;
      }
    }
    res.end();
  };
  next();
}

export function createUpstreamServer(slot: string): Server {
  // Bodies and header lists are built once: the upstream should cost as little per request as possible.
  const small = smallBody(slot);
  const large = Buffer.alloc(LARGE_BODY_BYTES, 'x');
  const hugePiece = Buffer.alloc(HUGE_PIECE_BYTES, 'y');
  const hugePieces = HUGE_BODY_BYTES / HUGE_PIECE_BYTES;
  const health = Buffer.from(JSON.stringify({ status: 'healthy', slot }));
  const events = eventsBody(slot);
  // Flat [name, value, name, value…] lists: writeHead takes them without copying into an object.
  // Without content-length, a head written by writeHead makes Node frame the body in chunks.
  const head = (type: string, length: number | undefined) => [
    'content-type',
    type,
    ...(length === undefined ? [] : ['content-length', String(length)]),
    UPSTREAM_SLOT_HEADER,
    slot,
  ];
  const JSON_TYPE = 'application/json';
  const BINARY = 'application/octet-stream';
  const heads = {
    small: head(JSON_TYPE, small.length),
    smallChunked: head(JSON_TYPE, undefined),
    large: head(BINARY, large.length),
    largeChunked: head(BINARY, undefined),
    huge: head(BINARY, HUGE_BODY_BYTES),
    hugeChunked: head(BINARY, undefined),
    health: head(JSON_TYPE, health.length),
    events: head(JSON_TYPE, events.length),
  };
  const notFound = Buffer.from('{"error":"not_found"}');
  const notFoundHead = head(JSON_TYPE, notFound.length);
  const chunked = (path: string) => `${path}/chunked`;

  const server = createServer((req, res) => {
    // Bodies (if any) are drained so keep-alive connections stay usable.
    req.resume();
    switch (req.url) {
      case UPSTREAM_PATHS.small:
        res.writeHead(200, heads.small).end(small);
        return;
      case chunked(UPSTREAM_PATHS.small):
        res.writeHead(200, heads.smallChunked).end(small);
        return;
      case UPSTREAM_PATHS.large:
        res.writeHead(200, heads.large).end(large);
        return;
      case chunked(UPSTREAM_PATHS.large):
        res.writeHead(200, heads.largeChunked).end(large);
        return;
      case UPSTREAM_PATHS.huge:
        res.writeHead(200, heads.huge);
        streamPieces(res, hugePiece, hugePieces);
        return;
      case chunked(UPSTREAM_PATHS.huge):
        res.writeHead(200, heads.hugeChunked);
        streamPieces(res, hugePiece, hugePieces);
        return;
      case UPSTREAM_PATHS.health:
        res.writeHead(200, heads.health).end(health);
        return;
      case UPSTREAM_PATHS.events:
        res.writeHead(200, heads.events).end(events);
        return;
      case UPSTREAM_PATHS.headers: {
        const echo = Buffer.from(JSON.stringify(req.headers));
        res.writeHead(200, head(JSON_TYPE, echo.length)).end(echo);
        return;
      }
      default:
        res.writeHead(404, notFoundHead).end(notFound);
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
