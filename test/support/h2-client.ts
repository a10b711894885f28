import { once } from 'node:events';
import {
  connect,
  constants,
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from 'node:http2';

export interface H2Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** The body's bytes as they came (a compressed body still compressed). */
  raw: Buffer;
}

export interface H2RequestOptions {
  method?: string;
  headers?: OutgoingHttpHeaders;
  body?: string | Buffer;
  /** Written in pieces, this far apart (a streamed upload). */
  bodyChunks?: Array<string | Buffer>;
}

/** The error a stream ended with (RST_STREAM from the server), with its HTTP/2 code. */
export class H2StreamError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
    readonly rstCode: number | undefined,
  ) {
    super(message);
  }
}

/**
 * One HTTP/2 connection (node:http2, ALPN h2) to a TLS listener, trusting
 * `ca`; requests are streams on it.
 */
export class H2Client {
  readonly goaways: Array<{ errorCode: number; lastStreamID: number }> = [];

  private constructor(
    readonly session: ClientHttp2Session,
    /** The server's first SETTINGS (Node shows defaults in remoteSettings until then). */
    private readonly settingsArrived: Promise<unknown>,
  ) {
    session.on('goaway', (errorCode: number, lastStreamID: number) =>
      this.goaways.push({ errorCode, lastStreamID }),
    );
    // Failures show on the streams; a session error must not crash the test run.
    session.on('error', () => undefined);
  }

  static connect(url: string, ca: string, servername = 'localhost'): Promise<H2Client> {
    return new Promise((resolve, reject) => {
      const session = connect(url, { ca, servername });
      const settingsArrived = once(session, 'remoteSettings');
      // A session that fails first rejects this too; nobody may be waiting for it.
      settingsArrived.catch(() => undefined);
      session.once('connect', () => {
        session.off('error', reject);
        resolve(new H2Client(session, settingsArrived));
      });
      session.once('error', reject);
    });
  }

  request(path: string, options: H2RequestOptions = {}): Promise<H2Answer> {
    return new Promise((resolve, reject) => {
      const bodyless = options.body === undefined && options.bodyChunks === undefined;
      const stream = this.session.request(
        { ':method': options.method ?? 'GET', ':path': path, ...options.headers },
        // node:http2 ends GET, HEAD and DELETE streams at once unless told otherwise.
        { endStream: bodyless },
      );
      let status = 0;
      let headers: IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      stream.on('response', (h) => {
        headers = h;
        status = Number(h[':status']);
      });
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', (error: NodeJS.ErrnoException) =>
        reject(new H2StreamError(error.message, error.code, stream.rstCode)),
      );
      stream.on('end', () => {
        const raw = Buffer.concat(chunks);
        resolve({ status, headers, body: raw.toString(), raw });
      });
      stream.on('close', () => {
        if (stream.rstCode !== undefined && stream.rstCode !== constants.NGHTTP2_NO_ERROR) {
          reject(new H2StreamError(`stream reset (${stream.rstCode})`, undefined, stream.rstCode));
        }
      });
      if (options.bodyChunks !== undefined) {
        const pieces = [...options.bodyChunks];
        const next = () => {
          const piece = pieces.shift();
          if (piece === undefined) stream.end();
          else stream.write(piece, () => setTimeout(next, 20));
        };
        next();
      } else {
        stream.end(options.body);
      }
    });
  }

  /** Whether the server's SETTINGS allow extended CONNECT (RFC 8441), once they arrived. */
  async connectProtocolEnabled(): Promise<boolean> {
    await this.settingsArrived;
    return this.session.remoteSettings.enableConnectProtocol === true;
  }

  /**
   * RFC 8441: a WebSocket on a stream of this connection (`:method CONNECT`,
   * `:protocol`), once the server allowed it. Resolves with the answer's head;
   * on a 200 the stream carries the WebSocket (StreamWebSocket speaks it).
   */
  async webSocket(
    path: string,
    headers: OutgoingHttpHeaders = {},
    protocol = 'websocket',
  ): Promise<{ status: number; headers: IncomingHttpHeaders; stream: ClientHttp2Stream }> {
    if (!(await this.connectProtocolEnabled())) {
      throw new Error('the server does not allow extended CONNECT');
    }
    const stream = this.session.request({
      ':method': 'CONNECT',
      ':protocol': protocol,
      ':scheme': 'https',
      ':path': path,
      'sec-websocket-version': '13',
      ...headers,
    });
    return new Promise((resolve, reject) => {
      stream.once('response', (head) =>
        resolve({ status: Number(head[':status']), headers: head, stream }),
      );
      stream.once('error', (error: NodeJS.ErrnoException) =>
        reject(new H2StreamError(error.message, error.code, stream.rstCode)),
      );
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.session.closed || this.session.destroyed) resolve();
      else this.session.close(() => resolve());
    });
  }

  destroy(): void {
    this.session.destroy();
  }
}

/** One request on a connection of its own. */
export async function h2Request(
  url: string,
  ca: string,
  path: string,
  options: H2RequestOptions = {},
): Promise<H2Answer> {
  const client = await H2Client.connect(url, ca);
  try {
    return await client.request(path, options);
  } finally {
    client.destroy();
  }
}

/** The rest of a stream's body, as text. */
export async function bodyOf(stream: ClientHttp2Stream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
