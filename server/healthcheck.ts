import { readFileSync } from 'node:fs';
import type { Slot } from '../common/slot.js';

/** The direct port of each slot on the host (the compose stacks' ports). */
export const SLOT_PORTS: Record<Slot, number> = { blue: 8081, green: 8082 };

/**
 * What `healthcheck` checks without --url or --slot: the part this
 * container runs. The image's /app/server records `serve` or `proxy` in
 * TOGATHER_COMMAND_FILE before it starts, and the image's HEALTHCHECK (run in
 * the same container, with the same environment) reads it back: the proxy's
 * liveness `/healthz` on its admin listener, or the app's `/health`, each at
 * the host and port its variables give. Outside the image nothing is
 * recorded: the app's /health.
 */
export function defaultHealthUrl(env: NodeJS.ProcessEnv = process.env): string {
  if (recordedCommand(env.TOGATHER_COMMAND_FILE) === 'proxy') {
    return `http://${probeHost(env.ADMIN_HOST)}:${portOf(env, 'ADMIN_PORT', 9080)}/healthz`;
  }
  return `http://${probeHost(env.SERVER_HOST)}:${portOf(env, 'SERVER_PORT', 8080)}/health`;
}

function recordedCommand(file: string | undefined): string | undefined {
  if (!file) return undefined;
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined; // not recorded (a read-only /tmp, or not started by /app/server)
  }
}

/** A listener's address as a client reaches it: the wildcard addresses are reached on loopback. */
function probeHost(host: string | undefined): string {
  if (!host || host === '0.0.0.0' || host === '::' || host === '[::]') return '127.0.0.1';
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

function portOf(env: NodeJS.ProcessEnv, name: string, fallback: number): string {
  const value = env[name];
  if (value === undefined || value === '') return String(fallback);
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65_535) {
    throw new HealthTargetError(`${name} is not a port: "${value}"`);
  }
  return value;
}

/** The environment names no address to check. */
export class HealthTargetError extends Error {
  override name = 'HealthTargetError';
}

export function slotHealthUrl(slot: Slot): string {
  return `http://127.0.0.1:${SLOT_PORTS[slot]}/health`;
}

export interface HealthcheckOptions {
  url: string;
  timeoutMs: number;
  /** Further attempts after a failed one. */
  retries: number;
  retryDelayMs: number;
}

/** Exit codes: 0 healthy or degraded, 1 unhealthy or unreachable, 2 unreadable answer. */
export type HealthcheckCode = 0 | 1 | 2;

export interface HealthcheckResult {
  code: HealthcheckCode;
  message: string;
}

/** `ok` is a liveness answer (`/healthz` of the app and of the proxy's admin listener). */
const READABLE = new Set(['healthy', 'degraded', 'ok', 'unhealthy', 'shutting_down']);

/** One GET of the health URL, classified. */
export async function checkOnce(url: string, timeoutMs: number): Promise<HealthcheckResult> {
  let response: Response;
  let text: string;
  try {
    response = await fetch(url, {
      signal: AbortSignal.timeout(timeoutMs),
      headers: { accept: 'application/json', 'user-agent': 'togather-healthcheck' },
    });
    text = await response.text();
  } catch (error) {
    const name = (error as Error).name;
    if (name === 'TimeoutError' || name === 'AbortError') {
      return { code: 1, message: `unreachable: no answer from ${url} within ${timeoutMs} ms` };
    }
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    return {
      code: 1,
      message: `unreachable: ${url}: ${cause?.code ?? cause?.message ?? (error as Error).message}`,
    };
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return { code: 2, message: `unreadable answer: HTTP ${response.status}, not JSON` };
  }
  const status = (body as { status?: unknown } | null)?.status;
  if (typeof status !== 'string' || !READABLE.has(status)) {
    return {
      code: 2,
      message: `unreadable answer: HTTP ${response.status} without a health status`,
    };
  }
  const summary = describe(body as Record<string, unknown>);
  if (
    (status === 'healthy' || status === 'degraded' || status === 'ok') &&
    response.status === 200
  ) {
    return { code: 0, message: `${status}${summary}` };
  }
  if (status === 'unhealthy' || status === 'shutting_down') {
    return { code: 1, message: `${status} (HTTP ${response.status})${summary}` };
  }
  return { code: 2, message: `unreadable answer: status ${status} with HTTP ${response.status}` };
}

/** ": slot blue, version 1.2.0; database fail: …" — who answered, and what is not passing. */
function describe(body: Record<string, unknown>): string {
  const who: string[] = [];
  if (typeof body.slot === 'string') who.push(`slot ${body.slot}`);
  // The package version: app_version in the health contract (whose version is the commit).
  const version = typeof body.app_version === 'string' ? body.app_version : body.version;
  if (typeof version === 'string') who.push(`version ${version}`);
  const parts = who.length > 0 ? [who.join(', ')] : [];
  const checks = body.checks;
  if (checks && typeof checks === 'object') {
    for (const [name, check] of Object.entries(
      checks as Record<string, { status?: unknown; message?: unknown } | null>,
    )) {
      if (check?.status === 'fail' || check?.status === 'warn') {
        parts.push(`${name} ${String(check.status)}: ${String(check.message)}`);
      }
    }
  }
  return parts.length > 0 ? `: ${parts.join('; ')}` : '';
}

/** Tries up to 1 + retries times while not healthy; the last attempt decides. */
export async function runHealthcheck(
  options: HealthcheckOptions,
  onAttempt: (result: HealthcheckResult, attempt: number) => void = () => undefined,
): Promise<HealthcheckResult> {
  let result: HealthcheckResult = { code: 1, message: 'not checked' };
  for (let attempt = 1; attempt <= options.retries + 1; attempt++) {
    result = await checkOnce(options.url, options.timeoutMs);
    onAttempt(result, attempt);
    if (result.code === 0 || attempt > options.retries) break;
    await new Promise((resolve) => setTimeout(resolve, options.retryDelayMs));
  }
  return result;
}
