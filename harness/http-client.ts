/**
 * The HTTP/1.1 client of the tests and the benchmarks: node:http, because
 * fetch hides hop-by-hop headers and refuses to send some of them, with the
 * body read in full and the moment the headers arrived (switch timings).
 */
import { Agent, request, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

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
  /** performance.now() when the status line and headers arrived. */
  headersAt: number;
}

export interface HttpRequestOptions {
  method?: string;
  headers?: OutgoingHttpHeaders;
  body?: string | Buffer;
  /** A connection of its own unless an agent is given. */
  agent?: Agent | false;
  signal?: AbortSignal;
  /** Fails the request when the socket is idle this long; no limit unless set. */
  timeoutMs?: number;
}

/** A keep-alive agent, so that a poll or an admin call costs a round trip, not a connection. */
export function keepAliveAgent(): Agent {
  return new Agent({ keepAlive: true, maxSockets: 4 });
}

/** One request; resolves with the whole answer. */
export function httpRequest(url: string, options: HttpRequestOptions = {}): Promise<HttpAnswer> {
  const method = options.method ?? 'GET';
  const headers: OutgoingHttpHeaders = { ...options.headers };
  // Node frames a DELETE or OPTIONS body only when told its length.
  if (options.body !== undefined && headers['transfer-encoding'] === undefined) {
    headers['content-length'] ??= Buffer.byteLength(options.body);
  }
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        headers,
        agent: options.agent ?? false,
        signal: options.signal,
        timeout: options.timeoutMs,
      },
      (res) => {
        const headersAt = performance.now();
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const raw = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: raw.toString('utf8'),
            raw,
            reusedSocket: req.reusedSocket,
            localPort: res.socket?.localPort,
            headersAt,
          });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

/**
 * GETs `url` until `check` passes (undefined after `timeoutMs`); a request
 * that fails is a "not yet". `stop` ends the wait early (a process that exited).
 */
export async function pollUntil(
  url: string,
  check: (answer: HttpAnswer) => boolean,
  timeoutMs: number,
  options: { agent?: Agent; stop?: () => boolean; requestTimeoutMs?: number } = {},
): Promise<HttpAnswer | undefined> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline && !options.stop?.()) {
    try {
      const answer = await httpRequest(url, {
        agent: options.agent,
        timeoutMs: options.requestTimeoutMs ?? timeoutMs,
      });
      if (check(answer)) return answer;
    } catch {
      // not up yet
    }
    await sleep(20);
  }
  return undefined;
}
