/** What one GET of an app route showed. */
export interface Probe {
  ok: boolean;
  status: number | null;
  /** The X-Togather-Slot header, when the answer came through the proxy. */
  slotHeader: string | null;
  body: Record<string, unknown> | null;
  /** Readable one-line summary, for step details and failure reasons. */
  summary: string;
}

/** GET `url` and read a JSON answer; never throws. */
export async function probe(url: string, timeoutMs = 5_000): Promise<Probe> {
  let response: Response;
  try {
    response = await fetch(url, {
      headers: { accept: 'application/json', 'x-actor': 'deploy' },
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    return {
      ok: false,
      status: null,
      slotHeader: null,
      body: null,
      summary: unreachable(url, error),
    };
  }
  const text = await response.text().catch(() => '');
  let body: Record<string, unknown> | null = null;
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed === 'object' && parsed !== null) body = parsed as Record<string, unknown>;
  } catch {
    // not JSON: summarised from the text
  }
  const slotHeader = response.headers.get('x-togather-slot');
  const detail = body ? describeBody(body) : text.slice(0, 120).replace(/\s+/g, ' ');
  return {
    ok: response.status === 200,
    status: response.status,
    slotHeader,
    body,
    summary: `${response.status}${detail ? ` ${detail}` : ''}`,
  };
}

/** A health answer the deploy accepts: 200 with status healthy or degraded. */
export function isHealthy(p: Probe): boolean {
  const status = p.body?.status;
  return p.status === 200 && (status === 'healthy' || status === 'degraded');
}

export interface WaitOptions {
  retries: number;
  intervalMs: number;
  timeoutMs?: number;
  /** Lets a caller stop waiting (lost lock, signal). */
  signal?: AbortSignal;
}

/** Polls `<base>/health` until healthy; returns the last probe either way. */
export async function waitHealthy(
  baseUrl: string,
  options: WaitOptions,
): Promise<{ healthy: boolean; attempts: number; last: Probe }> {
  let last: Probe | undefined;
  for (let attempt = 1; attempt <= options.retries; attempt++) {
    last = await probe(`${baseUrl}/health`, options.timeoutMs);
    if (isHealthy(last)) return { healthy: true, attempts: attempt, last };
    if (attempt < options.retries && !options.signal?.aborted) {
      await sleep(options.intervalMs, options.signal);
    }
    if (options.signal?.aborted) break;
  }
  return { healthy: false, attempts: options.retries, last: last! };
}

/**
 * waitHealthy for a process this deploy started: a process that died is
 * reported at once (`exited` tells why) rather than after every retry.
 */
export async function waitHealthyWhileRunning(
  baseUrl: string,
  options: WaitOptions & { exited: () => string | undefined },
): Promise<{ healthy: boolean; attempts: number; last: Probe; exited: string | undefined }> {
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const watch = setInterval(() => {
    if (options.exited()) stop.abort();
  }, 100);
  try {
    const waited = await waitHealthy(baseUrl, { ...options, signal: stop.signal });
    return { ...waited, exited: options.exited() };
  } finally {
    clearInterval(watch);
    options.signal?.removeEventListener('abort', onAbort);
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

function describeBody(body: Record<string, unknown>): string {
  const parts: string[] = [];
  if (typeof body.status === 'string') parts.push(body.status);
  const checks = body.checks;
  if (typeof checks === 'object' && checks !== null) {
    const failing = Object.entries(
      checks as Record<string, { status?: unknown; message?: unknown }>,
    )
      .filter(([, c]) => c && c.status !== 'pass')
      .map(
        ([name, c]) => `${name}: ${String(c.status)}${c.message ? ` (${String(c.message)})` : ''}`,
      );
    if (failing.length > 0) parts.push(failing.join('; '));
  }
  if (typeof body.error === 'string') parts.push(body.error);
  if (typeof body.message === 'string') parts.push(body.message);
  if (typeof body.detail === 'string') parts.push(body.detail);
  return parts.join(', ');
}

function unreachable(url: string, error: unknown): string {
  if (error instanceof Error) {
    if (error.name === 'TimeoutError') return `no answer from ${url} in time`;
    const cause = (error as { cause?: { code?: string } }).cause;
    if (cause?.code) return `${url} unreachable (${cause.code})`;
    return `${url} unreachable (${error.message})`;
  }
  return `${url} unreachable`;
}
