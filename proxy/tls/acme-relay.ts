import type { SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { loadCertificate, type LoadedCertificate } from './certificate-pair.js';
import {
  ChangeListeners,
  type CertificateSource,
  type ServedCertificate,
} from './certificate-source.js';
import { Http01Challenges, type PendingChallenge } from './challenge-responder.js';
import type { TlsLayer } from './tls-layer.js';

/**
 * What a cluster primary that orders ACME certificates hands its workers
 * (PROXY_WORKERS > 1): the certificates it serves and the HTTP-01 tokens
 * pending, each time either changes. Workers own the public listeners, the
 * primary alone orders, so a CA's validation may reach any worker.
 */
export interface AcmeSnapshot {
  certificates: Array<{ domain: string; cert: string; key: string }>;
  challenges: PendingChallenge[];
}

/** The primary's layer as a snapshot; undefined without ACME. */
export function acmeSnapshot(layer: TlsLayer | undefined): AcmeSnapshot | undefined {
  if (layer?.acme === undefined) return undefined;
  return {
    certificates: layer.acme.certificates().map((served) => ({
      domain: served.name,
      cert: served.certificate.pem.cert,
      key: served.certificate.pem.key,
    })),
    challenges: layer.challenges?.snapshot() ?? [],
  };
}

/** Whether an IPC value is an AcmeSnapshot (the hot path must never see a malformed one). */
export function isAcmeSnapshot(value: unknown): value is AcmeSnapshot {
  if (typeof value !== 'object' || value === null) return false;
  const { certificates, challenges } = value as Partial<Record<string, unknown>>;
  const strings = (entry: unknown, names: string[]) =>
    typeof entry === 'object' &&
    entry !== null &&
    names.every((name) => typeof (entry as Record<string, unknown>)[name] === 'string');
  return (
    Array.isArray(certificates) &&
    certificates.every((c) => strings(c, ['domain', 'cert', 'key'])) &&
    Array.isArray(challenges) &&
    challenges.every(
      (c) =>
        strings(c, ['token', 'keyAuthorization']) &&
        typeof (c as { ttlMs?: unknown }).ttlMs === 'number',
    )
  );
}

/**
 * A worker's side of the relay: the primary's ACME certificates as a
 * CertificateSource (looked up by exact name, like the primary's own), and
 * its pending tokens for the plain listener.
 */
export class AcmeRelay implements CertificateSource {
  readonly challenges = new Http01Challenges();
  private readonly byName = new Map<string, LoadedCertificate>();
  private readonly listeners = new ChangeListeners();

  constructor(private readonly logger: Logger) {}

  /** Takes a snapshot from the primary; certificates that are already served are kept as they are. */
  apply(snapshot: AcmeSnapshot): void {
    this.challenges.replace(snapshot.challenges);
    let changed = false;
    const names = new Set<string>();
    for (const entry of snapshot.certificates) {
      const name = entry.domain.toLowerCase();
      names.add(name);
      const current = this.byName.get(name);
      if (current?.pem.cert === entry.cert && current.pem.key === entry.key) continue;
      try {
        this.byName.set(name, loadCertificate({ cert: entry.cert, key: entry.key }));
        changed = true;
      } catch (error) {
        this.logger.error(
          { domain: name, err: (error as Error).message },
          'certificate from the primary refused; the previous one stays in service',
        );
      }
    }
    for (const name of [...this.byName.keys()]) {
      if (names.has(name)) continue;
      this.byName.delete(name);
      changed = true;
    }
    if (changed) this.listeners.emit();
  }

  contextFor(servername: string): SecureContext | undefined {
    let name = servername.toLowerCase();
    if (name.endsWith('.')) name = name.slice(0, -1);
    return this.byName.get(name)?.context;
  }

  defaultCertificate(): LoadedCertificate | undefined {
    return this.byName.values().next().value;
  }

  certificates(): ServedCertificate[] {
    return [...this.byName].map(([name, certificate]) => ({
      name,
      source: 'acme' as const,
      certificate,
    }));
  }

  onChange(listener: () => void): void {
    this.listeners.add(listener);
  }

  async close(): Promise<void> {}
}
