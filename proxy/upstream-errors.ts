import { DrainAbortError } from './upstream.js';

/** No byte from the slot within UPSTREAM_TIMEOUT. */
export class UpstreamTimeoutError extends Error {
  override name = 'UpstreamTimeoutError';
  readonly code = 'EUPSTREAMTIMEOUT';
}

/** Label values of togather_proxy_upstream_errors_total{reason}: a closed set. */
export const UPSTREAM_ERROR_REASONS = [
  'refused',
  'dns',
  'unreachable',
  'reset',
  'timeout',
  'protocol',
  'drain_aborted',
  'other',
] as const;
export type UpstreamErrorReason = (typeof UPSTREAM_ERROR_REASONS)[number];

export interface UpstreamFailure {
  reason: UpstreamErrorReason;
  /** The answer's status: 504 for a timeout, 502 for everything else. */
  status: 502 | 504;
  /** The `error` field of the JSON answer. */
  error: string;
}

const REFUSED: UpstreamFailure = { reason: 'refused', status: 502, error: 'upstream_unreachable' };
const DNS: UpstreamFailure = { reason: 'dns', status: 502, error: 'upstream_unreachable' };
const UNREACHABLE: UpstreamFailure = {
  reason: 'unreachable',
  status: 502,
  error: 'upstream_unreachable',
};
const RESET: UpstreamFailure = { reason: 'reset', status: 502, error: 'upstream_reset' };
const TIMEOUT: UpstreamFailure = { reason: 'timeout', status: 504, error: 'upstream_timeout' };
const PROTOCOL: UpstreamFailure = {
  reason: 'protocol',
  status: 502,
  error: 'upstream_invalid_response',
};
const DRAIN: UpstreamFailure = { reason: 'drain_aborted', status: 502, error: 'drain_timeout' };
const OTHER: UpstreamFailure = { reason: 'other', status: 502, error: 'bad_gateway' };

/** Maps an error of the upstream request to the answer and the metric reason. */
export function classifyUpstreamError(error: unknown): UpstreamFailure {
  if (error instanceof UpstreamTimeoutError) return TIMEOUT;
  if (error instanceof DrainAbortError) return DRAIN;
  const code = (error as NodeJS.ErrnoException | null)?.code;
  switch (code) {
    case 'ECONNREFUSED':
      return REFUSED;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
    case 'EAI_FAIL':
      return DNS;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EHOSTDOWN':
    case 'ENETDOWN':
    case 'EADDRNOTAVAIL':
    case 'ETIMEDOUT':
      return UNREACHABLE;
    case 'ECONNRESET':
    case 'EPIPE':
    case 'ECONNABORTED':
      return RESET;
    default:
      if (typeof code === 'string' && code.startsWith('HPE_')) return PROTOCOL;
      return OTHER;
  }
}

/**
 * A pooled socket the slot closed while we reused it: the request may be
 * sent again on a fresh connection (when it is idempotent and had no body).
 */
export function isStaleSocketError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return code === 'ECONNRESET' || code === 'EPIPE';
}
