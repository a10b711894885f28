import type { SecureContext } from 'node:tls';
import type { LoadedCertificate } from './certificate-pair.js';

/** One certificate a source serves, for /admin/status and the expiry metric. */
export interface ServedCertificate {
  /** What the certificate is served for: a host name, `*.example.org`, or a file's name. */
  name: string;
  source: 'file' | 'directory' | 'acme';
  certificate: LoadedCertificate;
}

/**
 * Where the TLS listener gets its certificates. Lookups are synchronous and
 * in memory (they run inside every handshake); sources reload in the
 * background and tell the listener through onChange.
 */
export interface CertificateSource {
  /** The context for an SNI name, or undefined when this source has none for it. */
  contextFor(servername: string): SecureContext | undefined;
  /** For clients that send no SNI, or a name no certificate covers. */
  defaultCertificate(): LoadedCertificate | undefined;
  /** Every certificate served now. */
  certificates(): ServedCertificate[];
  /** Called after any certificate was replaced, added or removed. */
  onChange(listener: () => void): void;
  close(): Promise<void>;
}

/** Listeners of a source's changes; one place so every source calls them alike. */
export class ChangeListeners {
  private readonly listeners: Array<() => void> = [];

  add(listener: () => void): void {
    this.listeners.push(listener);
  }

  emit(): void {
    for (const listener of this.listeners) listener();
  }
}

/**
 * Several sources as one, asked in order (ACME first for its domains, then
 * the files). The default certificate is the first source's that has one.
 */
export function combineSources(sources: readonly CertificateSource[]): CertificateSource {
  if (sources.length === 1) return sources[0]!;
  return {
    contextFor(servername) {
      for (const source of sources) {
        const context = source.contextFor(servername);
        if (context) return context;
      }
      return undefined;
    },
    defaultCertificate() {
      for (const source of sources) {
        const certificate = source.defaultCertificate();
        if (certificate) return certificate;
      }
      return undefined;
    },
    certificates() {
      return sources.flatMap((source) => source.certificates());
    },
    onChange(listener) {
      for (const source of sources) source.onChange(listener);
    },
    async close() {
      await Promise.all(sources.map((source) => source.close()));
    },
  };
}
