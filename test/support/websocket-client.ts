import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import WebSocket from 'ws';

/** WebSocket clients (the `ws` package) for tests of the proxy's tunnels. */

export interface Opened {
  ws: WebSocket;
  /** The headers of the 101 answer. */
  headers: Record<string, string | string[] | undefined>;
}

/** Opens a WebSocket; resolves once the handshake succeeded. */
export function openWebSocket(url: string, headers: Record<string, string> = {}): Promise<Opened> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    let upgradeHeaders: Opened['headers'] = {};
    ws.once('upgrade', (res) => (upgradeHeaders = res.headers));
    ws.once('open', () => resolve({ ws, headers: upgradeHeaders }));
    ws.once('error', reject);
  });
}

/** A handshake the server refused: the status, headers and body of its answer. */
export function refusedWebSocket(
  url: string,
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => reject(new Error('the handshake succeeded')));
    ws.once('error', () => undefined);
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
  });
}

export function nextMessage(ws: WebSocket): Promise<WebSocket.RawData> {
  return new Promise((resolve) => ws.once('message', (data) => resolve(data)));
}

export function closeOf(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
  );
}

/** One WebSocket frame (RFC 6455 §5.2), whole. */
export interface Frame {
  opcode: number;
  payload: Buffer;
}

export const OPCODE_TEXT = 0x1;
export const OPCODE_BINARY = 0x2;
export const OPCODE_CLOSE = 0x8;

/** A client's frame, final and masked (RFC 6455 §5.3: every client frame is masked). */
export function clientFrame(opcode: number, payload: Buffer): Buffer {
  const length = payload.length;
  const size = length < 126 ? Buffer.from([length | 0x80]) : lengthBytes(length);
  const mask = randomBytes(4);
  const masked = Buffer.alloc(length);
  for (let i = 0; i < length; i++) masked[i] = payload[i]! ^ mask[i % 4]!;
  return Buffer.concat([Buffer.from([0x80 | opcode]), size, mask, masked]);
}

function lengthBytes(length: number): Buffer {
  if (length < 0x10000) {
    const bytes = Buffer.alloc(3);
    bytes[0] = 126 | 0x80;
    bytes.writeUInt16BE(length, 1);
    return bytes;
  }
  const bytes = Buffer.alloc(9);
  bytes[0] = 127 | 0x80;
  bytes.writeBigUInt64BE(BigInt(length), 1);
  return bytes;
}

/**
 * A WebSocket spoken frame by frame over any byte stream (an HTTP/2 stream
 * of RFC 8441, which the `ws` client cannot use): masked frames out, the
 * server's frames parsed as they come, and the close it ends with (1006
 * when the stream ended or was reset without a close frame).
 */
export class StreamWebSocket {
  readonly closed: Promise<{ code: number; reason: string }>;
  private buffered = Buffer.alloc(0);
  private readonly frames: Frame[] = [];
  private readonly waiting: Array<(frame: Frame) => void> = [];
  private resolveClosed!: (close: { code: number; reason: string }) => void;
  private closeSent = false;

  constructor(readonly stream: Duplex) {
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    stream.on('data', (chunk: Buffer) => this.read(chunk));
    // The server ended its side: so does this one (a stream without a close frame: 1006).
    stream.on('end', () => stream.end());
    stream.on('error', () => this.resolveClosed({ code: 1006, reason: '' }));
    stream.on('close', () => this.resolveClosed({ code: 1006, reason: '' }));
  }

  send(message: string | Buffer): void {
    this.stream.write(
      typeof message === 'string'
        ? clientFrame(OPCODE_TEXT, Buffer.from(message))
        : clientFrame(OPCODE_BINARY, message),
    );
  }

  /** Sends a close frame with `code` (the stream ends once the server's close comes back). */
  close(code: number, reason = ''): void {
    this.closeSent = true;
    const payload = Buffer.alloc(2 + Buffer.byteLength(reason));
    payload.writeUInt16BE(code, 0);
    payload.write(reason, 2);
    this.stream.write(clientFrame(OPCODE_CLOSE, payload));
  }

  /** The next data frame from the server. */
  next(): Promise<Frame> {
    const frame = this.frames.shift();
    if (frame !== undefined) return Promise.resolve(frame);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** The next text message, as text. */
  async nextText(): Promise<string> {
    return (await this.next()).payload.toString('utf8');
  }

  private read(chunk: Buffer): void {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    for (;;) {
      const frame = parseFrame(this.buffered);
      if (frame === null) return;
      this.buffered = this.buffered.subarray(frame.size);
      if (frame.opcode === OPCODE_CLOSE) {
        const code = frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005;
        this.resolveClosed({ code, reason: frame.payload.subarray(2).toString('utf8') });
        // RFC 6455 §5.5.1: a close is answered with a close; then this side ends too.
        if (!this.closeSent) this.close(code === 1005 ? 1000 : code);
        this.stream.end();
        continue;
      }
      const waiter = this.waiting.shift();
      const whole = { opcode: frame.opcode, payload: frame.payload };
      if (waiter !== undefined) waiter(whole);
      else this.frames.push(whole);
    }
  }
}

/** The first whole frame of `bytes` and its size on the wire, or null while it is incomplete. */
function parseFrame(bytes: Buffer): (Frame & { size: number }) | null {
  if (bytes.length < 2) return null;
  const masked = (bytes[1]! & 0x80) !== 0;
  let length = bytes[1]! & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (bytes.length < 4) return null;
    length = bytes.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (bytes.length < 10) return null;
    length = Number(bytes.readBigUInt64BE(2));
    offset = 10;
  }
  const mask = masked ? bytes.subarray(offset, offset + 4) : null;
  if (masked) offset += 4;
  if (bytes.length < offset + length) return null;
  const payload = Buffer.from(bytes.subarray(offset, offset + length));
  if (mask !== null) for (let i = 0; i < length; i++) payload[i] = payload[i]! ^ mask[i % 4]!;
  return { opcode: bytes[0]! & 0x0f, payload, size: offset + length };
}
