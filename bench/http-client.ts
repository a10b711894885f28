/**
 * A lean HTTP/1.1 client for the admin API and for polling (node:http with a
 * keep-alive agent, so a poll costs one round trip, not a connection).
 */
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** performance.now() when the status line and headers arrived. */
  headersAt: number;
}

export function keepAliveAgent(): Agent {
  return new Agent({ keepAlive: true, maxSockets: 4 });
}

export function httpRequest(
  agent: Agent,
  method: string,
  url: string,
  headers: Record<string, string> = {},
  timeoutMs = 10_000,
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent, headers, timeout: timeoutMs }, (res) => {
      const headersAt = performance.now();
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
          headersAt,
        }),
      );
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** Polls until `check` passes or the timeout; bounded by time. */
export async function pollUntil(
  agent: Agent,
  url: string,
  check: (answer: HttpAnswer) => boolean,
  timeoutMs: number,
): Promise<HttpAnswer | undefined> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    try {
      const answer = await httpRequest(agent, 'GET', url, {}, timeoutMs);
      if (check(answer)) return answer;
    } catch {
      // not up yet
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return undefined;
}
