import type { ProxyConfig } from '../config.js';
import { AllowedHosts } from './allowed-hosts.js';
import { BodyLimit } from './body-limit.js';
import { Compression } from './compression.js';
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
