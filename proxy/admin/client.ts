import type { Slot } from '../../common/slot.js';
import type { SwitchRecord } from '../state/switch-record.js';

/** The admin API answered with an error: its status and JSON body. */
export class AdminApiError extends Error {
  override name = 'AdminApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly body: Record<string, unknown>,
    /** The answer's Retry-After, when it gave one (429, 503). */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** No answer from the admin API (refused, timed out, not HTTP JSON). */
export class AdminUnreachableError extends Error {
  override name = 'AdminUnreachableError';
}

/** 200 answer of switch and rollback. */
export interface SwitchAnswer {
  active: Slot;
  previous: Slot | null;
  epoch: number;
  changed: boolean;
  switched_at: string;
}

export interface AdminClientOptions {
  /** e.g. http://127.0.0.1:9080 */
  url: string;
  apiKey: string;
  /** Sent as X-Actor: who switched, for the audit history. */
  actor?: string;
  /** A switch waits for the health gate (up to 3 tries of 2 s): keep this well above. */
  timeoutMs?: number;
}

export interface AdminClient {
  switch(slot: Slot, options?: { force?: boolean; expectEpoch?: number }): Promise<SwitchAnswer>;
  rollback(options?: { force?: boolean; expectEpoch?: number }): Promise<SwitchAnswer>;
  status(): Promise<Record<string, unknown>>;
  history(limit?: number): Promise<SwitchRecord[]>;
}

/** A small client of the proxy's admin API, used by the CLI and by `togather deploy`. */
export function createAdminClient(options: AdminClientOptions): AdminClient {
  const base = options.url.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? 30_000;

  async function call(method: 'GET' | 'POST', path: string, body?: object): Promise<unknown> {
    const headers: Record<string, string> = {
      authorization: `Bearer ${options.apiKey}`,
      accept: 'application/json',
    };
    if (options.actor) headers['x-actor'] = options.actor;
    if (body) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(base + path, {
        method,
        headers,
        body: body ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      throw new AdminUnreachableError(`cannot reach the admin API at ${base}: ${reason(error)}`);
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new AdminUnreachableError(
        `${method} ${base}${path} answered ${response.status} with a body that is not JSON: ${text.slice(0, 200)}`,
      );
    }
    if (!response.ok) {
      const fields = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<
        string,
        unknown
      >;
      const code = typeof fields.error === 'string' ? fields.error : `http_${response.status}`;
      const message = typeof fields.message === 'string' ? fields.message : text.slice(0, 200);
      const retryAfterMs = retryAfter(response.headers.get('retry-after'));
      throw new AdminApiError(response.status, code, message, fields, retryAfterMs);
    }
    return parsed;
  }

  function switchBody(extra: { force?: boolean; expectEpoch?: number }) {
    return {
      ...(extra.force ? { force: true } : {}),
      ...(extra.expectEpoch !== undefined ? { expect_epoch: extra.expectEpoch } : {}),
    };
  }

  return {
    async switch(slot, extra = {}) {
      return (await call('POST', '/admin/switch', { slot, ...switchBody(extra) })) as SwitchAnswer;
    },
    async rollback(extra = {}) {
      return (await call('POST', '/admin/rollback', switchBody(extra))) as SwitchAnswer;
    },
    async status() {
      return (await call('GET', '/admin/status')) as Record<string, unknown>;
    },
    async history(limit = 50) {
      const answer = (await call('GET', `/admin/history?limit=${limit}`)) as {
        history: SwitchRecord[];
      };
      return answer.history;
    },
  };
}

/** Retry-After in seconds or as an HTTP date, in milliseconds from now. */
function retryAfter(header: string | null): number | undefined {
  if (header === null) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function reason(error: unknown): string {
  if (error instanceof Error) {
    if (error.name === 'TimeoutError') return 'no answer in time';
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    if (cause?.code) return `${cause.code}${cause.message ? ` (${cause.message})` : ''}`;
    return cause?.message ?? error.message;
  }
  return String(error);
}
