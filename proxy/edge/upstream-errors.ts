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
  'certificate',
  'tls',
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
const CERTIFICATE: UpstreamFailure = {
  reason: 'certificate',
  status: 502,
  error: 'upstream_certificate',
};
const TLS: UpstreamFailure = { reason: 'tls', status: 502, error: 'upstream_tls' };
const DRAIN: UpstreamFailure = { reason: 'drain_aborted', status: 502, error: 'drain_timeout' };
const OTHER: UpstreamFailure = { reason: 'other', status: 502, error: 'bad_gateway' };

/**
 * An https slot's certificate failed the check (OpenSSL's verify results as
 * Node names them, and Node's own host name check): not trusted by
 * UPSTREAM_CA_FILE or the default roots, expired, or for another name.
 */
const CERTIFICATE_ERRORS: ReadonlySet<string> = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** Maps an error of the upstream request to the answer and the metric reason. */
export function classifyUpstreamError(error: unknown): UpstreamFailure {
  if (error instanceof UpstreamTimeoutError) return TIMEOUT;
  if (error instanceof DrainAbortError) return DRAIN;
  const code = (error as NodeJS.ErrnoException | null)?.code;
  // undici's parser failures carry no code when llhttp names none (bytes that are not HTTP).
  if (code === undefined && (error as Error | null)?.name === 'HTTPParserError') return PROTOCOL;
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
    case 'EPROTO':
      return TLS;
    // undici's own errors (the slot pool, slot-pass.ts).
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return TIMEOUT;
    case 'UND_ERR_SOCKET':
      return RESET;
    case 'UND_ERR_HEADERS_OVERFLOW':
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
      return PROTOCOL;
    default:
      if (typeof code !== 'string') return OTHER;
      if (code.startsWith('HPE_')) return PROTOCOL;
      if (CERTIFICATE_ERRORS.has(code)) return CERTIFICATE;
      // The TLS handshake failed otherwise (a slot speaking plain http, no common cipher...).
      if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) return TLS;
      return OTHER;
  }
}

/**
 * A pooled socket the slot closed while we reused it: the request may be
 * sent again on a fresh connection (when it is idempotent and had no body).
 */
export function isStaleSocketError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  // UND_ERR_SOCKET: undici's "other side closed" (the slot's FIN on a pooled connection).
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET';
}
