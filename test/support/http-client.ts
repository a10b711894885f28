import { request, type Agent, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { connect } from 'node:net';

export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** The body's bytes as received (still compressed, when the answer is). */
  raw: Buffer;
  /** The request went over a connection used before (keep-alive). */
  reusedSocket: boolean;
  /** Local port of the client connection: equal ports mean the same connection. */
  localPort: number | undefined;
}

export interface HttpRequestOptions {
  method?: string;
  headers?: OutgoingHttpHeaders;
  body?: string | Buffer;
  agent?: Agent | false;
  signal?: AbortSignal;
}

/**
 * One request with node:http (fetch hides hop-by-hop headers and refuses to
 * send some of them); the body is read in full.
 */
export function httpRequest(url: string, options: HttpRequestOptions = {}): Promise<HttpAnswer> {
  const headers: OutgoingHttpHeaders = { ...options.headers };
  // Node frames a DELETE or OPTIONS body only when told its length.
  if (options.body !== undefined && headers['transfer-encoding'] === undefined) {
    headers['content-length'] ??= Buffer.byteLength(options.body);
  }
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method ?? 'GET',
        headers,
        agent: options.agent ?? false,
        signal: options.signal,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
            raw: Buffer.concat(chunks),
            reusedSocket: req.reusedSocket,
            localPort: res.socket?.localPort,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

export interface RawAnswer {
  statusLine: string;
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Writes bytes on a fresh TCP connection and parses the one answer that comes back. */
export function rawHttp(
  port: number,
  text: string | Buffer,
  timeoutMs = 10_000,
): Promise<RawAnswer> {
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
      const answer = parseRaw(Buffer.concat(chunks).toString('latin1'));
      if (answer) resolve(answer);
      else
        reject(new Error(`unreadable answer: ${JSON.stringify(Buffer.concat(chunks).toString())}`));
    });
    socket.write(text);
  });
}

function parseRaw(text: string): RawAnswer | null {
  const end = text.indexOf('\r\n\r\n');
  if (end === -1) return null;
  const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n');
  const status = Number(/^HTTP\/1\.\d (\d{3})/.exec(statusLine)?.[1]);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { statusLine, status, headers, body: text.slice(end + 4) };
}
