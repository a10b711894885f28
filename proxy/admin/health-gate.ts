import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { redactSlotUrl } from '../../common/logger.js';

/** What one GET of a slot's health URL saw. */
export interface HealthProbe {
  url: string;
  /** True only for a 200 answer within the timeout. */
  ok: boolean;
  /** The HTTP status, when an answer came. */
  status_code?: number;
  /** `status` of a JSON health body (healthy, degraded, unhealthy, shutting_down). */
  status?: string;
  /** The package version of a JSON health body (`app_version`, else `version`). */
  version?: string;
  /** Why no answer came: timeout, refused, reset... */
  error?: string;
  latency_ms: number;
}

/** The gate's verdict and every probe it made. */
export interface HealthGateResult {
  healthy: boolean;
  url: string;
  attempts: HealthProbe[];
}

export interface HealthGateOptions {
  /** Per try, for connect, headers and body together. */
  timeoutMs?: number;
  tries?: number;
  retryDelayMs?: number;
  /** Trust for an https slot (UPSTREAM_CA_FILE's PEM), as the slot's agent has it. */
  ca?: string | undefined;
}

/** A health body larger than this is not read further: only its status matters. */
const MAX_BODY_BYTES = 64 * 1024;

/** `<slot url><health path>`, keeping any path prefix of the slot URL. */
export function healthUrl(slotUrl: string, healthPath: string): string {
  return slotUrl.replace(/\/+$/, '') + healthPath;
}

/**
 * The gate a switch passes before traffic moves: the target must answer 200
 * within the timeout, on one of up to `tries` tries. A 200 ends it at once.
 */
export async function runHealthGate(
  url: string,
  options: HealthGateOptions = {},
): Promise<HealthGateResult> {
  const tries = options.tries ?? 3;
  const timeoutMs = options.timeoutMs ?? 2000;
  const retryDelayMs = options.retryDelayMs ?? 500;
  const attempts: HealthProbe[] = [];
  for (let i = 0; i < tries; i++) {
    if (i > 0) await delay(retryDelayMs);
    const probe = await probeHealth(url, timeoutMs, options.ca);
    attempts.push(probe);
    if (probe.ok) return { healthy: true, url, attempts };
  }
  return { healthy: false, url, attempts };
}

/**
 * One GET on a fresh connection (no pooled socket that the slot may have
 * closed meanwhile, which would fail a probe for the wrong reason). An https
 * slot's certificate is checked against `ca` (PEM; unset: Node's default
 * roots), the trust its requests have.
 */
export function probeHealth(
  url: string,
  timeoutMs: number,
  ca?: string | undefined,
): Promise<HealthProbe> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  return new Promise((resolve) => {
    let settled = false;
    const finish = (probe: Omit<HealthProbe, 'url' | 'latency_ms'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve({ url, ...probe, latency_ms: elapsed() });
    };
    const options: RequestOptions = {
      method: 'GET',
      agent: false,
      headers: { accept: 'application/json', 'user-agent': 'togather-proxy-health' },
    };
    const req = url.startsWith('https:')
      ? httpsRequest(url, {
          ...options,
          rejectUnauthorized: true,
          ...(ca === undefined ? {} : { ca }),
        })
      : httpRequest(url, options);
    const timer = setTimeout(
      () => finish({ ok: false, error: `no answer within ${timeoutMs} ms` }),
      timeoutMs,
    );
    req.on('error', (error: NodeJS.ErrnoException) =>
      finish({ ok: false, error: describe(error) }),
    );
    req.on('response', (res: IncomingMessage) => {
      readBody(res).then(
        (body) => finish({ ok: res.statusCode === 200, status_code: res.statusCode, ...body }),
        (error: NodeJS.ErrnoException) =>
          finish({ ok: false, status_code: res.statusCode, error: describe(error) }),
      );
    });
    req.end();
  });
}

/** The `status` and package version of a JSON health body, when there are any. */
function readBody(res: IncomingMessage): Promise<{ status?: string; version?: string }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    res.on('error', reject);
    res.on('aborted', () => reject(new Error('answer cut off')));
    res.on('end', () => {
      const out: { status?: string; version?: string } = {};
      try {
        const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        if (typeof parsed === 'object' && parsed !== null) {
          const fields = parsed as Record<string, unknown>;
          if (typeof fields.status === 'string') out.status = fields.status.slice(0, 64);
          // The app's package version: `app_version` in the Togather health
          // contract (where `version` is the commit), `version` in older builds.
          const version =
            typeof fields.app_version === 'string' ? fields.app_version : fields.version;
          if (typeof version === 'string') out.version = version.slice(0, 128);
        }
      } catch {
        // not JSON: the status code alone decides
      }
      resolve(out);
    });
  });
}

function describe(error: NodeJS.ErrnoException): string {
  return error.code ? `${error.code}: ${error.message}` : error.message;
}

/** One line for logs and error messages: what the last probe saw (the URL without secrets). */
export function describeProbe(probe: HealthProbe): string {
  const url = redactSlotUrl(probe.url);
  if (probe.status_code !== undefined) {
    const status = probe.status ? ` (status ${probe.status})` : '';
    return `GET ${url} answered ${probe.status_code}${status}${probe.error ? `, ${probe.error}` : ''}`;
  }
  return `GET ${url} failed: ${probe.error ?? 'no answer'}`;
}

/** What the gate saw, for an answer: its URLs without secrets. */
export function shownGateResult(
  health: HealthGateResult,
): Pick<HealthGateResult, 'url' | 'attempts'> {
  return {
    url: redactSlotUrl(health.url),
    attempts: health.attempts.map((probe) => ({ ...probe, url: redactSlotUrl(probe.url) })),
  };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
