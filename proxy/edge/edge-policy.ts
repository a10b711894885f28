import type { IncomingHttpHeaders } from 'node:http';
import type { ProxyConfig } from '../config.js';
import type { ContentCoding } from './accept-encoding.js';
import { AllowedHosts } from './allowed-hosts.js';
import { BodyLimit } from './body-limit.js';
import { Compression, type CompressionRequest } from './compression.js';
import { ErrorAnswers } from './error-response.js';
import { SecurityHeaders } from './security-headers.js';

/** The variables of the edge policy. */
export type EdgePolicyConfig = Pick<
  ProxyConfig,
  'COMPRESSION' | 'MAX_BODY_SIZE' | 'SECURITY_HEADERS' | 'CONTENT_SECURITY_POLICY' | 'ALLOWED_HOSTS'
>;

/**
 * The policies nginx and Caddy applied in front of the app, one module each,
 * built once per data plane; null where a policy is off.
 */
export interface EdgePolicy {
  /** The proxy's own error answers, carrying the security headers. */
  readonly errors: ErrorAnswers;
  readonly securityHeaders: SecurityHeaders | null;
  readonly compression: Compression | null;
  readonly bodyLimit: BodyLimit | null;
  readonly allowedHosts: AllowedHosts | null;
}

export function edgePolicyFrom(config: EdgePolicyConfig): EdgePolicy {
  const securityHeaders = SecurityHeaders.from({
    enabled: config.SECURITY_HEADERS,
    contentSecurityPolicy: config.CONTENT_SECURITY_POLICY,
  });
  const errors = new ErrorAnswers(securityHeaders);
  return {
    errors,
    securityHeaders,
    compression: config.COMPRESSION ? new Compression() : null,
    bodyLimit: config.MAX_BODY_SIZE > 0 ? new BodyLimit(config.MAX_BODY_SIZE, errors) : null,
    allowedHosts:
      config.ALLOWED_HOSTS === undefined ? null : new AllowedHosts(config.ALLOWED_HOSTS),
  };
}

/**
 * The policy's edits of a slot's answer head, the same on HTTP/1.1 and
 * HTTP/2: the security headers the slot did not set, then compression's
 * decision and its edits, on the head's header lines ([name, value, ...]).
 * Returns the coding the body is to be compressed with; null: relayed as it is.
 */
export function applyToSlotHead(
  policy: Pick<EdgePolicy, 'securityHeaders' | 'compression'>,
  lines: string[],
  req: CompressionRequest,
  status: number,
  headers: IncomingHttpHeaders,
): ContentCoding | null {
  policy.securityHeaders?.addMissing(lines, headers);
  const compression = policy.compression;
  if (compression === null) return null;
  const decision = compression.decide(req, status, headers);
  if (decision === 'leave') return null;
  compression.editHead(lines, decision);
  return decision === 'vary' ? null : decision;
}
