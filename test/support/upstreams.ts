import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

export type UpstreamSlot = 'blue' | 'green';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * A small real app slot on a loopback port, for proxy tests. Routes:
 * - `/echo...` any method: JSON {slot, method, url, headers, body}
 * - `/status/NNN`: that status, JSON {slot, status}
 * - `/slow?ms=N`: 200 JSON {slot} after N ms
 * - `/hang`: never answers
 * - `/stream?chunks=N&interval=MS`: `chunk i\n` every MS
 * - `/upload[?type=T]`: streams the request body back as it arrives (Content-Type T,
 *   default application/octet-stream)
 * - `/answer?bytes=N&status=S&h-<name>=<value>&chunked=1&cut=1`: status S (200) with N
 *   (4096) bytes of text and the headers named (Content-Type application/json unless
 *   given); `chunked`: no Content-Length, sent in two writes; `cut`: half the body, then
 *   the connection is destroyed
 * - `/hop-headers`: an answer full of hop-by-hop and proxy-owned headers
 * - `/close-connection`: answers with `Connection: close`
 * - `/reset`: destroys the connection without answering
 * - `/reset-mid-body`: sends headers and part of the body, then destroys the connection
 * - `/health`: 200 {status: healthy, slot}
 * - anything else: 200 JSON {slot, path}
 * WebSockets on any path but `/ws-refused` (401) echo each message as
 * `<slot>:<message>`; a text message `close:<code>` makes the slot close with
 * that code. With `tls` it speaks https (and wss) with that certificate.
 */
export class TestUpstream {
  readonly requests: RecordedRequest[] = [];
  /** Requests whose connection went away before the answer was complete. */
  aborted = 0;
  /** TCP connections accepted so far. */
  connectionsAccepted = 0;
  readonly websockets = new Set<WebSocket>();
  readonly wss: WebSocketServer;

  private constructor(
    readonly slot: UpstreamSlot,
    readonly server: Server | HttpsServer,
    /** https (and wss) instead of http. */
    readonly secure = false,
  ) {
    this.wss = new WebSocketServer({
      server,
      // A slot that refuses some upgrades: 401 from `ws`.
      verifyClient: (info: { req: IncomingMessage }) => !info.req.url?.startsWith('/ws-refused'),
    });
    this.wss.on('connection', (ws) => {
      this.websockets.add(ws);
      ws.on('close', () => this.websockets.delete(ws));
      ws.on('message', (data, isBinary) => {
        const text = isBinary ? null : data.toString();
        if (text !== null && text.startsWith('close:')) {
          ws.close(Number(text.slice(6)), 'asked to');
          return;
        }
        if (isBinary) ws.send(Buffer.concat([Buffer.from(`${slot}:`), data as Buffer]));
        else ws.send(`${slot}:${text ?? ''}`);
      });
    });
    // For https: every TLS connection (the plain 'connection' event counts TCP ones).
    server.on(secure ? 'secureConnection' : 'connection', () => this.connectionsAccepted++);
  }

  static async start(
    slot: UpstreamSlot,
    port = 0,
    options: { tls?: { cert: string; key: string } } = {},
  ): Promise<TestUpstream> {
    const server = options.tls ? createHttpsServer(options.tls) : createServer();
    // Longer than any test, so the slot never closes a pooled connection by itself.
    server.keepAliveTimeout = 120_000;
    const upstream = new TestUpstream(slot, server, options.tls !== undefined);
    server.on('request', (req, res) => upstream.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    return upstream;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `${this.secure ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  /** Connections open to this slot now (pooled proxy sockets included). */
  openConnections(): Promise<number> {
    return new Promise((resolve, reject) =>
      this.server.getConnections((error, count) => (error ? reject(error) : resolve(count))),
    );
  }

  lastRequest(): RecordedRequest {
    const last = this.requests[this.requests.length - 1];
    if (!last) throw new Error(`${this.slot} has received no request`);
    return last;
  }

  async close(): Promise<void> {
    for (const ws of this.websockets) ws.terminate();
    this.wss.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://upstream');
    const path = url.pathname;
    res.on('close', () => {
      if (!res.writableFinished) this.aborted++;
    });

    if (path === '/upload') {
      this.record(req, '(streamed)');
      res.writeHead(200, {
        'content-type': url.searchParams.get('type') ?? 'application/octet-stream',
        'x-slot': this.slot,
      });
      res.flushHeaders();
      req.pipe(res);
      return;
    }

    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      this.record(req, body);
      this.route(path, url, req, res, body);
    });
  }

  private record(req: IncomingMessage, body: string): void {
    this.requests.push({
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      body,
    });
  }

  private route(
    path: string,
    url: URL,
    req: IncomingMessage,
    res: ServerResponse,
    body: string,
  ): void {
    const slot = this.slot;
    if (path.startsWith('/echo')) {
      json(res, 200, { slot, method: req.method, url: req.url, headers: req.headers, body });
      return;
    }
    if (path === '/answer') {
      answer(url, req, res);
      return;
    }
    const status = /^\/status\/(\d{3})$/.exec(path);
    if (status) {
      json(res, Number(status[1]), { slot, status: Number(status[1]) });
      return;
    }
    switch (path) {
      case '/slow': {
        const timer = setTimeout(
          () => json(res, 200, { slot }),
          Number(url.searchParams.get('ms')),
        );
        res.on('close', () => clearTimeout(timer));
        return;
      }
      case '/hang':
        return;
      case '/stream': {
        const chunks = Number(url.searchParams.get('chunks') ?? 3);
        const interval = Number(url.searchParams.get('interval') ?? 100);
        res.writeHead(200, { 'content-type': 'text/plain' });
        let sent = 0;
        const tick = () => {
          if (res.destroyed) return;
          res.write(`chunk ${sent}\n`);
          sent++;
          if (sent >= chunks) res.end();
          else setTimeout(tick, interval);
        };
        tick();
        return;
      }
      case '/hop-headers':
        res.writeHead(200, {
          'content-type': 'application/json',
          connection: 'keep-alive, x-upstream-hop',
          'x-upstream-hop': 'must not pass',
          'keep-alive': 'timeout=99',
          'proxy-authenticate': 'Basic realm="slot"',
          upgrade: 'h2c',
          'x-togather-slot': 'not-the-proxy',
          'x-request-id': 'chosen-by-the-slot',
          'x-kept': 'yes',
        });
        res.end(JSON.stringify({ slot }));
        return;
      case '/close-connection':
        res.writeHead(200, { 'content-type': 'application/json', connection: 'close' });
        res.end(JSON.stringify({ slot }));
        return;
      case '/reset':
        req.socket.destroy();
        return;
      case '/reset-mid-body':
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' });
        res.write('partial');
        setTimeout(() => (req.socket as Socket).destroy(), 50);
        return;
      case '/health':
        json(res, 200, { status: 'healthy', slot });
        return;
      default:
        json(res, 200, { slot, path: req.url });
    }
  }
}

/** The body of `/answer`: N bytes of repetitive text, as JSON lists of events are. */
export function answerBody(bytes: number): Buffer {
  const unit = '{"name":"Open mic night","place":"Town hall","starts":"2026-01-01T19:00:00Z"},';
  return Buffer.from(unit.repeat(Math.ceil(bytes / unit.length)).slice(0, bytes));
}

function answer(url: URL, req: IncomingMessage, res: ServerResponse): void {
  const body = answerBody(Number(url.searchParams.get('bytes') ?? 4096));
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  for (const [name, value] of url.searchParams) {
    if (name.startsWith('h-')) headers[name.slice(2)] = value;
  }
  const chunked = url.searchParams.has('chunked');
  if (!chunked) headers['content-length'] = String(body.length);
  const status = Number(url.searchParams.get('status') ?? 200);
  res.writeHead(status, headers);
  if (req.method === 'HEAD' || status === 204 || status === 304) {
    res.end();
    return;
  }
  const half = Math.floor(body.length / 2);
  res.write(body.subarray(0, half));
  if (url.searchParams.has('cut')) {
    setTimeout(() => req.socket.destroy(), 50);
    return;
  }
  res.end(body.subarray(half));
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** Blue and green test slots on free ports. */
export async function startUpstreams(): Promise<{ blue: TestUpstream; green: TestUpstream }> {
  const [blue, green] = await Promise.all([
    TestUpstream.start('blue'),
    TestUpstream.start('green'),
  ]);
  return { blue, green };
}
