import {
  createServer,
  STATUS_CODES,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import {
  createServer as createTcpServer,
  type AddressInfo,
  type Server as TcpServer,
  type Socket,
} from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocketServer, type WebSocket } from 'ws';
import { StrictRequestReader } from './strict-http-reader.js';

export type FakeSlotName = 'blue' | 'green';

export interface FakeHealth {
  /** Status of GET /health; 200 unless set. */
  status: number;
  /** Holds the health answer this long (a slot too slow for the gate). */
  delayMs: number;
  version: string;
}

export interface FakeSlotOptions {
  /** Listen on this port (a slot back on its old address); a free one by default. */
  port?: number;
  /**
   * `http` (the default): Node's HTTP server, with WebSockets and every route.
   * `raw`: a TCP server with its own strict HTTP/1.1 reader, independent of
   * Node's parser, that proves what reached the slot: each connection's bytes
   * are kept, bytes that do not frame as a request are kept as `unreadable`
   * (and the connection closed), and the answers of the shared routes are
   * written by hand, in request order per connection.
   */
  wire?: 'http' | 'raw';
  /** https (and wss) with this certificate; `http` wire only. */
  tls?: { cert: string; key: string };
  /** The /health answer to start with. */
  health?: Partial<FakeHealth>;
  /** Keep every request in `requests` (the default); false keeps counts only, for a slot under load. */
  record?: boolean;
}

/** One request as it reached the slot, once all of its body had arrived. */
export interface RecordedRequest {
  /** Which TCP (or TLS) connection it came on, numbered from 1. */
  connection: number;
  method: string;
  /** The request target as sent (path and query). */
  target: string;
  version: string;
  /** Header lines in order, names as sent. */
  headers: Array<[string, string]>;
  body: Buffer;
}

/** Bytes a connection carried that do not frame as HTTP/1.1 requests: a desync (`raw` wire). */
export interface Unreadable {
  connection: number;
  reason: string;
  bytes: string;
}

/** The first value of a header of a recorded request (names in any case). */
export function headerOf(request: RecordedRequest, name: string): string | undefined {
  const wanted = name.toLowerCase();
  return request.headers.find(([n]) => n.toLowerCase() === wanted)?.[1];
}

/** An answer of the routes both wires serve. */
interface CannedAnswer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** Sent after this long: `/slow`, a slow /health. */
  delayMs: number;
}

interface Target {
  path: string;
  query: URLSearchParams;
}

/**
 * The one stand-in for an app slot in the tests, on a real loopback socket.
 *
 * Routes of both wires (every answer carries `X-Upstream-Slot`):
 * - `/health`: as set with `setHealth` (status, delay, version): JSON
 *   {status: healthy|unhealthy, slot, version}; counted in `healthRequests`
 * - `/slow?ms=N`: like any other path, after N ms (100 by default)
 * - `/hang...`: never answers
 * - `/big?kb=N`: N KiB (64) of application/octet-stream
 * - `/hop-answer`: an answer that tries to speak for the proxy and to strip
 *   its headers (hop-by-hop and proxy-owned headers of its own)
 * - anything else: 200 JSON {slot, path} (path: the target as received)
 *
 * Routes of the `http` wire only:
 * - `/echo...` any method: JSON {slot, method, url, headers, body}
 * - `/status/NNN`: that status, JSON {slot, status}
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
 * - WebSockets on any path but `/ws-refused` (401) echo each message as
 *   `<slot>:<message>`; a text message `close:<code>` makes the slot close
 *   with that code. Handshakes are not recorded as requests.
 */
export class FakeSlot {
  readonly health: FakeHealth;
  /** Every request, health probes included (see `traffic()`), unless `record: false`. */
  readonly requests: RecordedRequest[] = [];
  /** GET /health answered or being answered. */
  healthRequests = 0;
  /** Requests whose connection went away before their answer was complete. */
  aborted = 0;
  /** Connections accepted so far (for https: TLS connections). */
  connectionsAccepted = 0;
  /** WebSockets open now (`http` wire). */
  readonly websockets = new Set<WebSocket>();

  private readonly server: TcpServer;
  private readonly webSocketServer: WebSocketServer | undefined;
  private readonly record: boolean;
  private readonly sockets = new Set<Socket>();
  private readonly connectionIds = new WeakMap<Socket, number>();
  private readonly unreadableSeen: Unreadable[] = [];
  /** Each connection's bytes (`raw` wire). */
  private readonly raw = new Map<number, Buffer[]>();
  private readonly open = new Set<number>();

  private constructor(
    readonly slot: FakeSlotName,
    readonly wire: 'http' | 'raw',
    /** https (and wss) instead of http. */
    readonly secure: boolean,
    options: FakeSlotOptions,
  ) {
    this.health = { status: 200, delayMs: 0, version: '1.0.0', ...options.health };
    this.record = options.record ?? true;
    if (wire === 'raw') {
      if (options.tls) throw new Error('a fake slot on the raw wire speaks plain HTTP/1.1 only');
      this.server = createTcpServer((socket) => this.accept(socket));
      return;
    }
    const server: HttpServer = options.tls ? createHttpsServer(options.tls) : createServer();
    // Longer than any test, so the slot never closes a pooled connection by itself.
    server.keepAliveTimeout = 120_000;
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.handle(req, res));
    server.on('connection', (socket: Socket) => this.track(socket));
    // For https: every TLS connection (the plain 'connection' event counts TCP ones).
    server.on(secure ? 'secureConnection' : 'connection', (socket: Socket) =>
      this.connectionIds.set(socket, ++this.connectionsAccepted),
    );
    this.server = server;
    this.webSocketServer = this.echoWebSockets(server);
  }

  static async start(slot: FakeSlotName, options: FakeSlotOptions = {}): Promise<FakeSlot> {
    const fake = new FakeSlot(slot, options.wire ?? 'http', options.tls !== undefined, options);
    await new Promise<void>((resolve, reject) => {
      fake.server.once('error', reject);
      fake.server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
    });
    return fake;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `${this.secure ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  /** Connections open to this slot now (the proxy's pooled ones included). */
  get openConnections(): number {
    return this.sockets.size;
  }

  /** The WebSocket server (`http` wire), for a test that watches handshakes. */
  get wss(): WebSocketServer {
    if (!this.webSocketServer) throw new Error('a fake slot on the raw wire has no WebSockets');
    return this.webSocketServer;
  }

  /** Bytes that did not frame as requests (`raw` wire). */
  get unreadable(): Unreadable[] {
    this.rawOnly('unreadable');
    return this.unreadableSeen;
  }

  setHealth(change: Partial<FakeHealth>): void {
    Object.assign(this.health, change);
  }

  /** Requests other than the proxy's health probes (GET `healthPath`). */
  traffic(healthPath = '/health'): RecordedRequest[] {
    return this.requests.filter((r) => r.target !== healthPath);
  }

  /** Requests whose target starts with `prefix`. */
  received(prefix = '/'): RecordedRequest[] {
    return this.requests.filter((r) => r.target.startsWith(prefix));
  }

  /** Each connection's bytes (as latin1 text) and whether it is still open (`raw` wire). */
  connections(): Array<{ id: number; text: string; open: boolean }> {
    this.rawOnly('connections()');
    return [...this.raw.entries()].map(([id, chunks]) => ({
      id,
      text: Buffer.concat(chunks).toString('latin1'),
      open: this.open.has(id),
    }));
  }

  /** Every byte that reached this slot, on any connection, as latin1 text (`raw` wire). */
  rawText(): string {
    this.rawOnly('rawText()');
    return [...this.raw.values()]
      .map((chunks) => Buffer.concat(chunks).toString('latin1'))
      .join('');
  }

  /** Forgets what was recorded (connections stay open, counts stay). */
  reset(): void {
    this.requests.length = 0;
    this.unreadableSeen.length = 0;
    for (const chunks of this.raw.values()) chunks.length = 0;
  }

  /** Drops every open connection (the proxy's pooled sockets included). */
  dropConnections(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  async close(): Promise<void> {
    for (const ws of this.websockets) ws.terminate();
    this.webSocketServer?.close();
    this.dropConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private rawOnly(what: string): void {
    if (this.wire !== 'raw') throw new Error(`${what} needs a fake slot on the raw wire`);
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
  }

  private keep(request: RecordedRequest): void {
    if (this.record) this.requests.push(request);
  }

  /** The answer of the routes both wires serve; 'hang' for none at all. */
  private canned({ path, query }: Target, target: string): CannedAnswer | 'hang' {
    const slot = this.slot;
    if (path === '/health') {
      this.healthRequests++;
      const { status, delayMs, version } = this.health;
      const state = status === 200 ? 'healthy' : 'unhealthy';
      return this.json(status, { status: state, slot, version }, delayMs);
    }
    if (path.startsWith('/hang')) return 'hang';
    if (path === '/big') {
      const size = Number(query.get('kb') ?? '64') * 1024;
      return {
        status: 200,
        headers: { 'Content-Type': 'application/octet-stream', 'X-Upstream-Slot': slot },
        body: Buffer.alloc(size, 'b'),
        delayMs: 0,
      };
    }
    if (path === '/hop-answer') {
      const answer = this.json(200, { slot, path: target }, 0);
      Object.assign(answer.headers, {
        Connection: 'keep-alive, X-Togather-Slot, X-Request-Id, X-Slot-Hop',
        'X-Togather-Slot': 'green',
        'X-Request-Id': 'chosen-by-the-slot',
        'X-Slot-Hop': 'must not pass',
        'Proxy-Authenticate': 'Basic realm="slot"',
        'Keep-Alive': 'timeout=1',
      });
      return answer;
    }
    // /slow?ms=N: a request still in flight at a switch, a drain or a shutdown.
    const delayMs = path === '/slow' ? Number(query.get('ms') ?? '100') || 0 : 0;
    return this.json(200, { slot, path: target }, delayMs);
  }

  private json(status: number, body: object, delayMs: number): CannedAnswer {
    return {
      status,
      headers: { 'Content-Type': 'application/json', 'X-Upstream-Slot': this.slot },
      body: Buffer.from(JSON.stringify(body)),
      delayMs,
    };
  }

  // --- the http wire -------------------------------------------------------

  private echoWebSockets(server: HttpServer): WebSocketServer {
    const slot = this.slot;
    const wss = new WebSocketServer({
      server,
      // A slot that refuses some upgrades: 401 from `ws`.
      verifyClient: (info: { req: IncomingMessage }) => !info.req.url?.startsWith('/ws-refused'),
    });
    wss.on('connection', (ws) => {
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
    return wss;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    res.on('close', () => {
      if (!res.writableFinished) this.aborted++;
    });
    const target = targetOf(req.url ?? '/');
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    if (target.path === '/upload') {
      res.writeHead(200, {
        'content-type': target.query.get('type') ?? 'application/octet-stream',
        'x-slot': this.slot,
      });
      res.flushHeaders();
      req.on('end', () => this.keep(this.recorded(req, chunks)));
      req.pipe(res);
      return;
    }
    req.on('end', () => {
      const request = this.recorded(req, chunks);
      this.keep(request);
      this.route(target, request, req, res);
    });
  }

  private recorded(req: IncomingMessage, chunks: Buffer[]): RecordedRequest {
    const headers: Array<[string, string]> = [];
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
      headers.push([req.rawHeaders[i]!, req.rawHeaders[i + 1]!]);
    }
    return {
      connection: this.connectionIds.get(req.socket) ?? 0,
      method: req.method ?? '',
      target: req.url ?? '',
      version: req.httpVersion,
      headers,
      body: Buffer.concat(chunks),
    };
  }

  private route(
    target: Target,
    request: RecordedRequest,
    req: IncomingMessage,
    res: ServerResponse,
  ): void {
    const { path, query } = target;
    const slot = this.slot;
    if (path.startsWith('/echo')) {
      const body = request.body.toString('utf8');
      json(res, 200, { slot, method: req.method, url: req.url, headers: req.headers, body });
      return;
    }
    if (path === '/answer') {
      answer(query, req, res);
      return;
    }
    const status = /^\/status\/(\d{3})$/.exec(path);
    if (status) {
      json(res, Number(status[1]), { slot, status: Number(status[1]) });
      return;
    }
    switch (path) {
      case '/stream': {
        const chunks = Number(query.get('chunks') ?? 3);
        const interval = Number(query.get('interval') ?? 100);
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
        setTimeout(() => req.socket.destroy(), 50);
        return;
    }
    const canned = this.canned(target, request.target);
    if (canned === 'hang') return;
    const send = () => {
      if (res.destroyed || res.writableEnded) return;
      res.writeHead(canned.status, {
        ...canned.headers,
        'Content-Length': String(canned.body.length),
      });
      res.end(canned.body);
    };
    if (canned.delayMs <= 0) {
      send();
      return;
    }
    const timer = setTimeout(send, canned.delayMs);
    res.on('close', () => clearTimeout(timer));
  }

  // --- the raw wire --------------------------------------------------------

  private accept(socket: Socket): void {
    this.track(socket);
    const id = ++this.connectionsAccepted;
    const chunks: Buffer[] = [];
    this.raw.set(id, chunks);
    this.open.add(id);
    /** Requests read on this connection and not answered yet. */
    let unanswered = 0;
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.open.delete(id);
      this.aborted += unanswered;
    });
    const reader = new StrictRequestReader();
    // Answers go out in request order: each waits for the one before.
    let answered: Promise<void> = Promise.resolve();
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      let result = reader.push(chunk);
      while (result.kind === 'request') {
        const request: RecordedRequest = { connection: id, ...result.request };
        this.keep(request);
        unanswered++;
        answered = answered.then(async () => {
          if (await this.answerRaw(socket, request)) unanswered--;
        });
        result = reader.push(Buffer.alloc(0));
      }
      if (result.kind === 'unreadable') {
        this.unreadableSeen.push({ connection: id, reason: result.reason, bytes: result.bytes });
        socket.destroy();
      }
    });
  }

  /** Writes the answer by hand; false when the connection went away first. */
  private async answerRaw(socket: Socket, request: RecordedRequest): Promise<boolean> {
    const canned = this.canned(targetOf(request.target), request.target);
    // Never answered: the answers after it on this connection wait for ever too.
    if (canned === 'hang') return new Promise<boolean>(() => undefined);
    if (canned.delayMs > 0) await sleep(canned.delayMs);
    if (socket.destroyed) return false;
    const headers: Record<string, string> = {
      ...canned.headers,
      'Content-Length': String(canned.body.length),
    };
    if (!Object.keys(headers).some((name) => name.toLowerCase() === 'connection')) {
      headers.Connection = 'keep-alive';
    }
    const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
    const reason = STATUS_CODES[canned.status] ?? 'Unknown';
    socket.write(`HTTP/1.1 ${canned.status} ${reason}\r\n${lines.join('')}\r\n`);
    socket.write(canned.body);
    return true;
  }
}

/** Path and query of a request target, without URL parsing (which reads `//x` as a host). */
function targetOf(target: string): Target {
  const mark = target.indexOf('?');
  return mark === -1
    ? { path: target, query: new URLSearchParams() }
    : { path: target.slice(0, mark), query: new URLSearchParams(target.slice(mark + 1)) };
}

/** The body of `/answer`: N bytes of repetitive text, as JSON lists of events are. */
export function answerBody(bytes: number): Buffer {
  const unit = '{"name":"Open mic night","place":"Town hall","starts":"2026-01-01T19:00:00Z"},';
  return Buffer.from(unit.repeat(Math.ceil(bytes / unit.length)).slice(0, bytes));
}

function answer(query: URLSearchParams, req: IncomingMessage, res: ServerResponse): void {
  const body = answerBody(Number(query.get('bytes') ?? 4096));
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  for (const [name, value] of query) {
    if (name.startsWith('h-')) headers[name.slice(2)] = value;
  }
  const chunked = query.has('chunked');
  if (!chunked) headers['content-length'] = String(body.length);
  const status = Number(query.get('status') ?? 200);
  res.writeHead(status, headers);
  if (req.method === 'HEAD' || status === 204 || status === 304) {
    res.end();
    return;
  }
  const half = Math.floor(body.length / 2);
  res.write(body.subarray(0, half));
  if (query.has('cut')) {
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

/** Blue and green fake slots on free ports, with the same options. */
export async function startFakeSlots(
  options: Omit<FakeSlotOptions, 'port'> = {},
): Promise<Record<FakeSlotName, FakeSlot>> {
  const [blue, green] = await Promise.all([
    FakeSlot.start('blue', options),
    FakeSlot.start('green', options),
  ]);
  return { blue, green };
}
