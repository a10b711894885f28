import { connect, type Socket } from 'node:net';
import { until } from './wait.js';

/** One HTTP/1.x answer read off a raw socket. */
export interface RawResponse {
  status: number;
  statusLine: string;
  /** Lower-cased names; a repeated header keeps its last value. */
  headers: Record<string, string>;
  body: string;
}

/**
 * A client TCP connection that sends exactly the bytes it is given (hostile
 * framing included) and reads the answers off the wire: how many came, what
 * they said, and whether and when the other side closed.
 */
export class RawClient {
  private readonly chunks: Buffer[] = [];
  private closedAt: number | null = null;
  private readonly openedAt = Date.now();
  private readonly closedPromise: Promise<void>;
  /** A socket error seen (ECONNRESET when the proxy resets, EPIPE...). */
  error: string | null = null;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.chunks.push(chunk));
    socket.on(
      'error',
      (error: NodeJS.ErrnoException) => (this.error = error.code ?? error.message),
    );
    this.closedPromise = new Promise((resolve) =>
      socket.on('close', () => {
        this.closedAt = Date.now();
        resolve();
      }),
    );
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, host);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawClient(socket));
      });
      socket.once('error', reject);
    });
  }

  get closed(): boolean {
    return this.closedAt !== null;
  }

  /** Milliseconds from connecting to the close, or null while open. */
  get openForMs(): number | null {
    return this.closedAt === null ? null : this.closedAt - this.openedAt;
  }

  /** Everything received so far, as latin1 text. */
  get received(): string {
    return Buffer.concat(this.chunks).toString('latin1');
  }

  write(bytes: string | Buffer): void {
    if (!this.socket.destroyed) {
      this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
    }
  }

  /** Sends `bytes` one at a time every `intervalMs` until done or the connection closes. */
  async trickle(bytes: string, intervalMs: number): Promise<number> {
    let sent = 0;
    for (const char of bytes) {
      if (this.closed || this.socket.destroyed || !this.socket.writable) break;
      this.write(char);
      sent++;
      await sleep(intervalMs);
    }
    return sent;
  }

  /** The complete answers received so far. */
  answers(): RawResponse[] {
    return parseResponses(this.received);
  }

  /** Waits until `count` complete answers arrived (or the connection closed, or the time ran out). */
  async waitForAnswers(count: number, timeoutMs = 10_000): Promise<RawResponse[]> {
    // Running out of time is an outcome here, not a failure: the caller checks what came.
    await until(() => this.closed || this.answers().length >= count, {
      timeout: timeoutMs,
    }).catch(() => undefined);
    return this.answers();
  }

  /** Waits for the other side to close; false if it was still open after `timeoutMs`. */
  async waitForClose(timeoutMs = 10_000): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const result = await Promise.race([this.closedPromise.then(() => true), timedOut]);
    clearTimeout(timer);
    return result;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export interface Conversation {
  answers: RawResponse[];
  /** The proxy closed the connection (within the wait). */
  closed: boolean;
  /** What arrived, as text (for failure messages). */
  received: string;
}

/**
 * Sends `bytes` on a fresh connection, then waits until the proxy closes it,
 * or until `answers` answers arrived and `quietMs` passed without more (a
 * connection kept alive), or `timeoutMs` passed.
 */
export async function converse(
  port: number,
  bytes: string | Buffer,
  options: { answers?: number; quietMs?: number; timeoutMs?: number } = {},
): Promise<Conversation> {
  const client = await RawClient.connect(port);
  try {
    client.write(bytes);
    const expected = options.answers ?? 1;
    await client.waitForAnswers(expected, options.timeoutMs ?? 5000);
    // Give the proxy the chance to send more than expected, or to close.
    await client.waitForClose(options.quietMs ?? 200);
    return { answers: client.answers(), closed: client.closed, received: client.received };
  } finally {
    client.destroy();
  }
}

/** The status line and headers of one answer's head (the text before its blank line). */
function parseHead(head: string): Omit<RawResponse, 'body'> {
  const [statusLine = '', ...lines] = head.split('\r\n');
  const status = Number(/^HTTP\/\d\.\d (\d{3})/.exec(statusLine)?.[1] ?? NaN);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { statusLine, status, headers };
}

/**
 * Writes bytes on a fresh TCP connection, waits for the other side to close
 * it, and parses the one answer that came back; its body is everything after
 * the head, framing and all.
 */
export function rawHttp(
  port: number,
  text: string | Buffer,
  timeoutMs = 10_000,
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer within ${timeoutMs} ms: ${Buffer.concat(chunks)}`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    // EPIPE/ECONNRESET while the proxy closes after answering are expected here.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      const received = Buffer.concat(chunks).toString('latin1');
      const end = received.indexOf('\r\n\r\n');
      if (end === -1) {
        reject(new Error(`unreadable answer: ${JSON.stringify(Buffer.concat(chunks).toString())}`));
        return;
      }
      resolve({ ...parseHead(received.slice(0, end)), body: received.slice(end + 4) });
    });
    socket.write(text);
  });
}

/** Parses complete HTTP/1.x answers out of `text` (Content-Length, chunked or none). */
export function parseResponses(text: string): RawResponse[] {
  const answers: RawResponse[] = [];
  let at = 0;
  while (at < text.length) {
    const headEnd = text.indexOf('\r\n\r\n', at);
    if (headEnd === -1) break;
    const { statusLine, status, headers } = parseHead(text.slice(at, headEnd));
    let bodyStart = headEnd + 4;
    let body: string;
    if (headers['transfer-encoding']?.toLowerCase().includes('chunked')) {
      const parts: string[] = [];
      for (;;) {
        const lineEnd = text.indexOf('\r\n', bodyStart);
        if (lineEnd === -1) return answers;
        const size = parseInt(text.slice(bodyStart, lineEnd), 16);
        if (Number.isNaN(size)) return answers;
        bodyStart = lineEnd + 2;
        if (size === 0) {
          const end = text.indexOf('\r\n', bodyStart);
          if (end === -1) return answers;
          bodyStart = end + 2;
          break;
        }
        if (text.length < bodyStart + size + 2) return answers;
        parts.push(text.slice(bodyStart, bodyStart + size));
        bodyStart += size + 2;
      }
      body = parts.join('');
      at = bodyStart;
    } else if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length']);
      if (text.length < bodyStart + length) break;
      body = text.slice(bodyStart, bodyStart + length);
      at = bodyStart + length;
    } else if (status === 204 || status === 304 || (status >= 100 && status < 200)) {
      body = '';
      at = bodyStart;
    } else {
      // Delimited by the close: whatever is left.
      body = text.slice(bodyStart);
      at = text.length;
    }
    answers.push({ status, statusLine, headers, body });
  }
  return answers;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
