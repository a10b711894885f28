/** One request as the bytes framed it (not as Node's HTTP parser would). */
export interface FramedRequest {
  method: string;
  target: string;
  version: string;
  /** Header lines in order, names as sent. */
  headers: Array<[string, string]>;
  body: Buffer;
}

export type ReadResult =
  | { kind: 'request'; request: FramedRequest }
  | { kind: 'more' }
  | { kind: 'unreadable'; reason: string; bytes: string };

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([^\s]+) HTTP\/(\d\.\d)$/;
const MAX_HEAD = 64 * 1024;

/**
 * Frames HTTP/1.1 requests out of a byte stream, strictly and independently
 * of Node's parser (CRLF lines, one framing per request: chunked or
 * Content-Length): anything unexpected is unreadable, so a test can prove
 * what reached a slot. Push each chunk, then push an empty buffer while it
 * keeps returning requests (several may arrive in one chunk).
 */
export class StrictRequestReader {
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
