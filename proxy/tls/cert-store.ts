import type { CertificatePem } from './certificate-pair.js';

/**
 * Where ACME keeps its account key and the certificates it obtained: a
 * directory for one proxy (CERT_DIR), Redis for a fleet (REDIS_URL). Reads
 * return undefined for "never stored"; unreadable or unreachable storage
 * throws.
 */
export interface CertificateStore {
  readonly kind: 'file' | 'redis';
  /** Where, for logs and /admin/status (no secrets). */
  readonly location: string;
  loadAccountKey(): Promise<string | undefined>;
  saveAccountKey(pem: string): Promise<void>;
  loadCertificate(domain: string): Promise<CertificatePem | undefined>;
  saveCertificate(domain: string, pem: CertificatePem): Promise<void>;
}

/** A domain as a file or key name: ACME_DOMAINS are validated DNS names, so this only guards. */
export function assertDomainName(domain: string): void {
  if (!/^[a-z0-9.-]+$/.test(domain) || domain.startsWith('.') || domain.includes('..')) {
    throw new Error(`not a domain name: ${JSON.stringify(domain)}`);
  }
}
