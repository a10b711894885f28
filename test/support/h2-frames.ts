import { connect, type TLSSocket } from 'node:tls';
import { valueOf } from './wait.js';

/**
 * A raw HTTP/2 client over TLS for hostile-input tests: it writes HEADERS
 * frames with whatever fields it is given (node:http2 refuses to send
 * connection-specific headers or bad pseudo-headers), encoded with HPACK
 * literals only, and records the frames the server sends back.
 */

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7 };
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_ACK = 0x1;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/** An HPACK integer with an N-bit prefix (RFC 7541 §5.1). */
function hpackInteger(value: number, prefixBits: number, firstByte: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([firstByte | value]);
  const bytes = [firstByte | max];
  let rest = value - max;
  while (rest >= 128) {
    bytes.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

/** Header fields as "literal without indexing, new name", no Huffman (RFC 7541 §6.2.2). */
export function hpackLiterals(fields: ReadonlyArray<readonly [string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields) {
    const n = Buffer.from(name, 'latin1');
    const v = Buffer.from(value, 'latin1');
    parts.push(
      Buffer.from([0x00]),
      hpackInteger(n.length, 7, 0),
      n,
      hpackInteger(v.length, 7, 0),
      v,
    );
  }
  return Buffer.concat(parts);
}

export function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head.writeUInt8(type, 3);
  head.writeUInt8(flags, 4);
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

export class RawH2Client {
  readonly frames: Frame[] = [];
  private buffered = Buffer.alloc(0);
  private closedResolve!: () => void;
  readonly closed = new Promise<void>((resolve) => (this.closedResolve = resolve));

  private constructor(private readonly socket: TLSSocket) {
    socket.on('data', (chunk: Buffer) => this.read(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => this.closedResolve());
  }

  static connect(port: number, ca: string): Promise<RawH2Client> {
    return new Promise((resolve, reject) => {
      const socket = connect(
        { host: '127.0.0.1', port, ca, servername: 'localhost', ALPNProtocols: ['h2'] },
        () => {
          if (socket.alpnProtocol !== 'h2') {
            reject(new Error(`ALPN gave ${String(socket.alpnProtocol)}`));
            return;
          }
          const client = new RawH2Client(socket);
          socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0, Buffer.alloc(0))]));
          resolve(client);
        },
      );
      socket.once('error', reject);
    });
  }

  /** A request of one HEADERS frame (END_STREAM, END_HEADERS) with these fields, in order. */
  headers(streamId: number, fields: ReadonlyArray<readonly [string, string]>): void {
    this.socket.write(
      frame(FRAME.HEADERS, FLAG_END_STREAM | FLAG_END_HEADERS, streamId, hpackLiterals(fields)),
    );
  }

  /** The usual pseudo-headers of a GET, before `extra`. */
  get(streamId: number, path: string, extra: ReadonlyArray<readonly [string, string]> = []): void {
    this.headers(streamId, [
      [':method', 'GET'],
      [':scheme', 'https'],
      [':authority', 'localhost'],
      [':path', path],
      ...extra,
    ]);
  }

  /** Waits for the stream's end: its RST_STREAM code, or 'answered' with the :status-carrying HEADERS. */
  outcome(streamId: number, timeoutMs = 5000): Promise<{ rst?: number; answered: boolean }> {
    return valueOf(
      () => {
        const mine = this.frames.filter((f) => f.streamId === streamId);
        const rst = mine.find((f) => f.type === FRAME.RST_STREAM);
        if (rst) return { rst: rst.payload.readUInt32BE(0), answered: false };
        if (mine.some((f) => f.type === FRAME.HEADERS)) return { answered: true };
        return undefined;
      },
      { timeout: timeoutMs, what: `an answer on stream ${streamId}` },
    );
  }

  goaways(): Array<{ lastStreamId: number; code: number }> {
    return this.frames
      .filter((f) => f.type === FRAME.GOAWAY)
      .map((f) => ({
        lastStreamId: f.payload.readUInt32BE(0) & 0x7fffffff,
        code: f.payload.readUInt32BE(4),
      }));
  }

  destroy(): void {
    this.socket.destroy();
  }

  private read(chunk: Buffer): void {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    while (this.buffered.length >= 9) {
      const length = this.buffered.readUIntBE(0, 3);
      if (this.buffered.length < 9 + length) return;
      const f: Frame = {
        type: this.buffered.readUInt8(3),
        flags: this.buffered.readUInt8(4),
        streamId: this.buffered.readUInt32BE(5) & 0x7fffffff,
        payload: this.buffered.subarray(9, 9 + length),
      };
      this.buffered = this.buffered.subarray(9 + length);
      this.frames.push(f);
      if (f.type === FRAME.SETTINGS && (f.flags & FLAG_ACK) === 0) {
        this.socket.write(frame(FRAME.SETTINGS, FLAG_ACK, 0, Buffer.alloc(0)));
      }
    }
  }
}
