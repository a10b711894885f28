import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';

/**
 * TLS 1.3 suites, then Mozilla's "intermediate" TLS 1.2 list (ECDHE only,
 * AEAD only). Node's default list is not used: it ends in `HIGH`, which with
 * an RSA certificate still admits suites without forward secrecy, such as
 * TLS_RSA_WITH_AES_128_CBC_SHA.
 */
export const TLS_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** What every secure context of the edge is built with; TLS 1.0 and 1.1 are off. */
export const TLS_POLICY: Readonly<SecureContextOptions> = {
  minVersion: 'TLSv1.2',
  ciphers: TLS_CIPHERS,
  // Ours, not the client's order: the strongest suite both sides speak.
  honorCipherOrder: true,
};

/** A certificate and its key as PEM text; the certificate may carry its chain after it. */
export interface CertificatePem {
  cert: string;
  key: string;
}

/** What the proxy tells about a certificate it serves. */
export interface CertificateInfo {
  /** Hex, upper case, as `openssl x509 -serial` prints it. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** DNS names of the subjectAltName (or the CN when there is none), lower case. */
  names: string[];
  fingerprint256: string;
}

/** A checked pair, ready to serve. */
export interface LoadedCertificate {
  pem: CertificatePem;
  info: CertificateInfo;
  context: SecureContext;
}

/** Why a pair was refused; the old context stays in service. */
export class CertificateRejected extends Error {
  override name = 'CertificateRejected';
  constructor(
    readonly reason: 'unreadable_certificate' | 'unreadable_key' | 'key_mismatch',
    message: string,
  ) {
    super(message);
  }
}

function namesOf(cert: X509Certificate): string[] {
  const alt = cert.subjectAltName;
  if (alt) {
    const names = alt
      .split(', ')
      .filter((entry) => entry.startsWith('DNS:'))
      .map((entry) => entry.slice(4).toLowerCase());
    if (names.length > 0) return names;
  }
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];
  return cn ? [cn.toLowerCase()] : [];
}

export function describeCertificate(cert: X509Certificate): CertificateInfo {
  return {
    serial: cert.serialNumber.toUpperCase(),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    names: namesOf(cert),
    fingerprint256: cert.fingerprint256,
  };
}

/** Reads the first certificate of a PEM text, or throws CertificateRejected. */
export function readCertificate(pem: string): X509Certificate {
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new CertificateRejected('unreadable_certificate', 'no PEM certificate in it');
  }
  try {
    return new X509Certificate(pem);
  } catch (error) {
    throw new CertificateRejected(
      'unreadable_certificate',
      `the certificate cannot be read (${(error as Error).message})`,
    );
  }
}

function readKey(pem: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (error) {
    throw new CertificateRejected(
      'unreadable_key',
      `the private key cannot be read (${(error as Error).message}); encrypted keys are not supported`,
    );
  }
}

/**
 * Checks a pair (both readable, the key belongs to the certificate) and builds
 * its secure context. A half-written file or a key of another certificate
 * throws CertificateRejected, so a reload never swaps in something that would
 * fail every handshake.
 */
export function loadCertificate(pem: CertificatePem): LoadedCertificate {
  const cert = readCertificate(pem.cert);
  const key = readKey(pem.key);
  if (!cert.checkPrivateKey(key)) {
    throw new CertificateRejected(
      'key_mismatch',
      `the private key does not belong to the certificate (serial ${cert.serialNumber})`,
    );
  }
  let context: SecureContext;
  try {
    context = createSecureContext({ ...TLS_POLICY, cert: pem.cert, key: pem.key });
  } catch (error) {
    // e.g. a chain entry after the leaf that OpenSSL cannot parse.
    throw new CertificateRejected(
      'unreadable_certificate',
      `the certificate chain cannot be used (${(error as Error).message})`,
    );
  }
  return { pem, info: describeCertificate(cert), context };
}
