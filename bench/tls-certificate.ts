/**
 * A throwaway self-signed certificate for 127.0.0.1 and localhost (ECDSA
 * P-256, what ACME issuers hand out by default), made with openssl so the
 * proxy and nginx serve byte-identical certificates.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { makeTempDir } from './processes.js';

export interface CertificateFiles {
  certFile: string;
  keyFile: string;
}

export function selfSignedCertificate(): CertificateFiles {
  const dir = makeTempDir('tls');
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  );
  return { certFile, keyFile };
}
