import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Logger } from 'pino';
import {
  CertificateRejected,
  loadCertificate,
  type LoadedCertificate,
} from './certificate-pair.js';
import {
  ChangeListeners,
  type CertificateSource,
  type ServedCertificate,
} from './certificate-source.js';
import { fileSignature, watchForChanges } from './change-watcher.js';
import type { TlsMetrics } from './tls-metrics.js';

export interface FilePairSourceOptions {
  certFile: string;
  keyFile: string;
  logger: Logger;
  metrics: TlsMetrics;
  debounceMs?: number;
  pollMs?: number;
}

/** Reads both files; a missing one is a CertificateRejected like a bad one. */
export async function readPair(certFile: string, keyFile: string): Promise<LoadedCertificate> {
  const read = (path: string, reason: 'unreadable_certificate' | 'unreadable_key') =>
    readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
      throw new CertificateRejected(reason, `cannot read ${path}: ${error.code ?? error.message}`);
    });
  const [cert, key] = await Promise.all([
    read(certFile, 'unreadable_certificate'),
    read(keyFile, 'unreadable_key'),
  ]);
  return loadCertificate({ cert, key });
}

/**
 * TLS_CERT_FILE + TLS_KEY_FILE: one certificate for every name, read again
 * when either file changes. A pair that does not load (half written, key of
 * another certificate) is refused with a log line and a metric, and the old
 * one stays in service. Throws CertificateRejected at start when the first
 * read fails: the proxy must not start without its certificate.
 */
export async function createFilePairSource(
  options: FilePairSourceOptions,
): Promise<CertificateSource> {
  const { logger, metrics } = options;
  const certFile = resolve(options.certFile);
  const keyFile = resolve(options.keyFile);
  const listeners = new ChangeListeners();
  let current = await readPair(certFile, keyFile);
  logger.info(
    { cert_file: certFile, serial: current.info.serial, not_after: current.info.notAfter },
    'TLS certificate loaded',
  );

  async function reload(): Promise<void> {
    try {
      const next = await readPair(certFile, keyFile);
      if (next.info.fingerprint256 === current.info.fingerprint256) return;
      current = next;
      metrics.countReload('file', 'reloaded');
      logger.info(
        { cert_file: certFile, serial: next.info.serial, not_after: next.info.notAfter },
        'TLS certificate reloaded',
      );
      listeners.emit();
    } catch (error) {
      if (!(error instanceof CertificateRejected)) throw error;
      metrics.countReload('file', 'refused');
      logger.error(
        { cert_file: certFile, key_file: keyFile, reason: error.reason, err: error.message },
        'TLS certificate not reloaded; the previous one stays in service',
      );
    }
  }

  const watcher = await watchForChanges({
    directories: [dirname(certFile), dirname(keyFile)],
    signature: async () =>
      (await Promise.all([fileSignature(certFile), fileSignature(keyFile)])).join('|'),
    onChange: reload,
    logger,
    debounceMs: options.debounceMs,
    pollMs: options.pollMs,
  });

  return {
    contextFor: () => current.context,
    defaultCertificate: () => current,
    certificates(): ServedCertificate[] {
      return [{ name: current.info.names[0] ?? certFile, source: 'file', certificate: current }];
    },
    onChange: (listener) => listeners.add(listener),
    async close() {
      watcher.close();
    },
  };
}
