import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { CertificatePem } from './certificate-pair.js';
import { assertDomainName, type CertificateStore } from './cert-store.js';

/** Keys are readable by the proxy's user only; certificates are public. */
const KEY_MODE = 0o600;
const CERT_MODE = 0o644;

async function readIfPresent(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Writes a temp file beside the target, fsyncs it, renames it over, fsyncs the directory. */
async function writeDurably(path: string, content: string, mode: number): Promise<void> {
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const file = await open(temp, 'wx', mode);
  try {
    await file.writeFile(content, 'utf8');
    await file.chmod(mode); // the umask may have narrowed or widened what open() set
    await file.sync();
  } finally {
    await file.close();
  }
  try {
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  // Makes the rename durable; some file systems refuse a directory fsync (the rename stays atomic).
  const directory = await open(dirname(path), 'r').catch(() => null);
  await directory?.sync().catch(() => undefined);
  await directory?.close();
}

/**
 * CERT_DIR: `account.key`, and `<domain>.crt` + `<domain>.key` per domain.
 * The key is written before the certificate: a crash between the two leaves
 * the old certificate with a key that does not match it, which loading
 * refuses (and ACME orders again) rather than serving a broken pair.
 */
export class FileCertificateStore implements CertificateStore {
  readonly kind = 'file';
  readonly location: string;
  private ready: Promise<void> | undefined;

  constructor(directory: string) {
    this.location = resolve(directory);
  }

  private ensureDirectory(): Promise<void> {
    this.ready ??= mkdir(this.location, { recursive: true, mode: 0o700 }).then(() => undefined);
    return this.ready;
  }

  loadAccountKey(): Promise<string | undefined> {
    return readIfPresent(join(this.location, 'account.key'));
  }

  async saveAccountKey(pem: string): Promise<void> {
    await this.ensureDirectory();
    await writeDurably(join(this.location, 'account.key'), pem, KEY_MODE);
  }

  async loadCertificate(domain: string): Promise<CertificatePem | undefined> {
    assertDomainName(domain);
    const [cert, key] = await Promise.all([
      readIfPresent(join(this.location, `${domain}.crt`)),
      readIfPresent(join(this.location, `${domain}.key`)),
    ]);
    return cert !== undefined && key !== undefined ? { cert, key } : undefined;
  }

  async saveCertificate(domain: string, pem: CertificatePem): Promise<void> {
    assertDomainName(domain);
    await this.ensureDirectory();
    await writeDurably(join(this.location, `${domain}.key`), pem.key, KEY_MODE);
    await writeDurably(join(this.location, `${domain}.crt`), pem.cert, CERT_MODE);
  }
}
