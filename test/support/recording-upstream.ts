import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/** One request as the slot's bytes framed it (not as Node's HTTP parser would). */
export interface RecordedRequest {
  /** Which TCP connection (from the proxy) it came on, numbered from 1. */
  connection: number;
  method: string;
  target: string;
  version: string;
  /** Header lines in order, names as sent. */
  headers: Array<[string, string]>;
  body: Buffer;
}

/** Bytes a connection carried that do not frame as HTTP/1.1 requests: a desync. */
export interface Unreadable {
  connection: number;
  reason: string;
  bytes: string;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([^\s]+) HTTP\/(\d\.\d)$/;
const MAX_HEAD = 64 * 1024;

/**
 * A slot that proves what reached it: a raw TCP server with its own strict
 * HTTP/1.1 request reader (CRLF lines, one framing per request: chunked or
 * Content-Length), independent of Node's parser. Every request is recorded
 * with its connection, every byte that does not frame as a request is kept
 * as `unreadable` (and the connection closed), and every connection's raw
 * bytes are kept.
 *
 * Answers, in order per connection: `/hang...` never; `/slow?ms=N` after N
 * ms; `/big?kb=N` N KiB of body; anything else 200 JSON `{slot, seq, target}` at once (`/hop-answer`
 * with hop-by-hop and proxy-owned headers of its own). Every answer carries
 * `X-Upstream-Slot`.
 */
export class RecordingUpstream {
  readonly requests: RecordedRequest[] = [];
  readonly unreadable: Unreadable[] = [];
  private readonly raw = new Map<number, Buffer[]>();
  private readonly sockets = new Set<Socket>();
  private readonly open = new Set<number>();
  private connectionCount = 0;

  private constructor(
    readonly slot: string,
    private readonly server: Server,
  ) {}

  static async start(slot: string, port = 0): Promise<RecordingUpstream> {
    const server = createServer();
    const upstream = new RecordingUpstream(slot, server);
    server.on('connection', (socket) => upstream.accept(socket));
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
    return `http://127.0.0.1:${this.port}`;
  }

  /** TCP connections accepted so far. */
  get connectionsAccepted(): number {
    return this.connectionCount;
  }

  /** Connections open now. */
  get openConnections(): number {
    return this.sockets.size;
  }

  /** Requests other than the proxy's health probes (GET `healthPath`). */
  traffic(healthPath = '/health'): RecordedRequest[] {
    return this.requests.filter((r) => r.target !== healthPath);
  }

  /** Each connection's bytes (as latin1 text) and whether it is still open. */
  connections(): Array<{ id: number; text: string; open: boolean }> {
    return [...this.raw.entries()].map(([id, chunks]) => ({
      id,
      text: Buffer.concat(chunks).toString('latin1'),
      open: this.open.has(id),
    }));
  }

  /** Requests whose target starts with `prefix`. */
  received(prefix = '/'): RecordedRequest[] {
    return this.requests.filter((r) => r.target.startsWith(prefix));
  }

  /** Every byte that reached this slot, on any connection, as latin1 text. */
  rawText(): string {
    return [...this.raw.values()]
      .map((chunks) => Buffer.concat(chunks).toString('latin1'))
      .join('');
  }

  /** Forgets what was recorded (connections stay open). */
  reset(): void {
    this.requests.length = 0;
    this.unreadable.length = 0;
    for (const chunks of this.raw.values()) chunks.length = 0;
  }

  /** Drops every open connection (the proxy's pooled sockets included). */
  dropConnections(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  async close(): Promise<void> {
    this.dropConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    const id = ++this.connectionCount;
    this.sockets.add(socket);
    const chunks: Buffer[] = [];
    this.raw.set(id, chunks);
    this.open.add(id);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.open.delete(id);
    });
    const reader = new RequestReader();
    // Answers go out in request order: each waits for the one before.
    let answered: Promise<void> = Promise.resolve();
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      let result = reader.push(chunk);
      while (result.kind === 'request') {
        const request: RecordedRequest = { connection: id, ...result.request };
        this.requests.push(request);
        const seq = this.requests.length;
        answered = answered.then(() => this.answer(socket, request, seq));
        result = reader.push(Buffer.alloc(0));
      }
      if (result.kind === 'unreadable') {
        this.unreadable.push({ connection: id, reason: result.reason, bytes: result.bytes });
        socket.destroy();
      }
    });
  }

  private async answer(socket: Socket, request: RecordedRequest, seq: number): Promise<void> {
    const url = new URL(request.target, 'http://slot');
    if (url.pathname.startsWith('/hang')) return new Promise<void>(() => undefined);
    if (url.pathname === '/slow') {
      await new Promise((r) => setTimeout(r, Number(url.searchParams.get('ms') ?? '100')));
    }
    if (socket.destroyed) return;
    if (url.pathname === '/big') {
      const size = Number(url.searchParams.get('kb') ?? '64') * 1024;
      socket.write(
        `HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${size}\r\n` +
          `X-Upstream-Slot: ${this.slot}\r\n\r\n`,
      );
      socket.write(Buffer.alloc(size, 'b'));
      return;
    }
    const body = JSON.stringify({ slot: this.slot, seq, target: request.target });
    // `/hop-answer`: an answer that tries to speak for the proxy and to strip its headers.
    const hostile =
      url.pathname === '/hop-answer'
        ? 'Connection: keep-alive, X-Togather-Slot, X-Request-Id, X-Slot-Hop\r\n' +
          'X-Togather-Slot: green\r\n' +
          'X-Request-Id: chosen-by-the-slot\r\n' +
          'X-Slot-Hop: must not pass\r\n' +
          'Proxy-Authenticate: Basic realm="slot"\r\n' +
          'Keep-Alive: timeout=1\r\n'
        : 'Connection: keep-alive\r\n';
    socket.write(
      'HTTP/1.1 200 OK\r\n' +
        'Content-Type: application/json\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        `X-Upstream-Slot: ${this.slot}\r\n` +
        hostile +
        '\r\n' +
        body,
    );
  }
}

type ReadResult =
  | { kind: 'request'; request: Omit<RecordedRequest, 'connection'> }
  | { kind: 'more' }
  | { kind: 'unreadable'; reason: string; bytes: string };

/** Frames requests out of a byte stream, strictly; anything unexpected is unreadable. */
class RequestReader {
  private buffer = Buffer.alloc(0);

  push(chunk: Buffer): ReadResult {
    if (chunk.length > 0) this.buffer = Buffer.concat([this.buffer, chunk]);
    if (this.buffer.length === 0) return { kind: 'more' };
    const headEnd = this.buffer.indexOf('\r\n\r\n');
    if (headEnd === -1) {
      if (this.buffer.length > MAX_HEAD) return this.fail('request head over 64 KiB');
      // A line break that is not CRLF can never become a valid head.
      if (/(^|[^\r])\n/.test(this.buffer.toString('latin1'))) return this.fail('bare LF');
      return { kind: 'more' };
    }
    const head = this.buffer.subarray(0, headEnd).toString('latin1');
    const [line = '', ...lines] = head.split('\r\n');
    const start = REQUEST_LINE.exec(line);
    if (!start) return this.fail(`bad request line ${JSON.stringify(line)}`);
    const headers: Array<[string, string]> = [];
    for (const text of lines) {
      const colon = text.indexOf(':');
      const name = colon > 0 ? text.slice(0, colon) : '';
      if (!TOKEN.test(name)) return this.fail(`bad header line ${JSON.stringify(text)}`);
      const value = text.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
      if (hasControlCharacter(value)) return this.fail(`control character in ${name}`);
      headers.push([name, value]);
    }
    const framing = bodyFraming(headers);
    if (typeof framing === 'string') return this.fail(framing);
    const bodyStart = headEnd + 4;
    let body: Buffer;
    let end: number;
    if (framing.kind === 'chunked') {
      const chunked = readChunked(this.buffer, bodyStart);
      if (chunked === 'more') return { kind: 'more' };
      if (typeof chunked === 'string') return this.fail(chunked);
      ({ body, end } = chunked);
    } else {
      end = bodyStart + framing.length;
      if (this.buffer.length < end) return { kind: 'more' };
      body = Buffer.from(this.buffer.subarray(bodyStart, end));
    }
    this.buffer = this.buffer.subarray(end);
    return {
      kind: 'request',
      request: { method: start[1]!, target: start[2]!, version: start[3]!, headers, body },
    };
  }

  private fail(reason: string): ReadResult {
    const bytes = this.buffer.toString('latin1');
    this.buffer = Buffer.alloc(0);
    return { kind: 'unreadable', reason, bytes };
  }
}

function bodyFraming(
  headers: Array<[string, string]>,
): { kind: 'chunked' } | { kind: 'length'; length: number } | string {
  const te = headers.filter(([n]) => n.toLowerCase() === 'transfer-encoding');
  const cl = headers.filter(([n]) => n.toLowerCase() === 'content-length');
  if (te.length > 0 && cl.length > 0) return 'both Transfer-Encoding and Content-Length';
  if (te.length > 1) return 'Transfer-Encoding given twice';
  if (cl.length > 1) return 'Content-Length given twice';
  if (te.length === 1) {
    const codings = te[0]![1].split(',').map((c) => c.trim().toLowerCase());
    if (codings[codings.length - 1] !== 'chunked') return `final coding not chunked: ${te[0]![1]}`;
    return { kind: 'chunked' };
  }
  if (cl.length === 1) {
    if (!/^\d{1,15}$/.test(cl[0]![1])) return `bad Content-Length ${JSON.stringify(cl[0]![1])}`;
    return { kind: 'length', length: Number(cl[0]![1]) };
  }
  return { kind: 'length', length: 0 };
}

function readChunked(
  buffer: Buffer,
  from: number,
): { body: Buffer; end: number } | 'more' | string {
  const parts: Buffer[] = [];
  let at = from;
  for (;;) {
    const lineEnd = buffer.indexOf('\r\n', at);
    if (lineEnd === -1) return 'more';
    const sizeLine = buffer.subarray(at, lineEnd).toString('latin1');
    const size = /^([0-9a-fA-F]{1,8})(;.*)?$/.exec(sizeLine);
    if (!size) return `bad chunk size line ${JSON.stringify(sizeLine)}`;
    const length = parseInt(size[1]!, 16);
    at = lineEnd + 2;
    if (length === 0) {
      // Trailer section: lines until an empty one.
      for (;;) {
        const trailerEnd = buffer.indexOf('\r\n', at);
        if (trailerEnd === -1) return 'more';
        const empty = trailerEnd === at;
        at = trailerEnd + 2;
        if (empty) return { body: Buffer.concat(parts), end: at };
      }
    }
    if (buffer.length < at + length + 2) return 'more';
    parts.push(Buffer.from(buffer.subarray(at, at + length)));
    if (buffer.subarray(at + length, at + length + 2).toString('latin1') !== '\r\n') {
      return 'chunk data not followed by CRLF';
    }
    at += length + 2;
  }
}

/** A control character other than HTAB (not allowed in a field value). */
function hasControlCharacter(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if ((code < 0x20 && code !== 0x09) || code === 0x7f) return true;
  }
  return false;
}
