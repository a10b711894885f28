import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { CertificateRejected, type LoadedCertificate } from './certificate-pair.js';
import {
  ChangeListeners,
  type CertificateSource,
  type ServedCertificate,
} from './certificate-source.js';
import { fileSignature, watchForChanges } from './change-watcher.js';
import { readPair } from './file-pair-source.js';
import { HostIndex } from './host-index.js';
import type { TlsMetrics } from './tls-metrics.js';

/** `default.crt` + `default.key` is served to clients without SNI (and unknown names). */
export const DEFAULT_PAIR_NAME = 'default';

export interface DirectorySourceOptions {
  directory: string;
  logger: Logger;
  metrics: TlsMetrics;
  debounceMs?: number;
  pollMs?: number;
}

/** Host names that have a `.crt` or a `.key` file, sorted, and whether the `.crt` is there. */
async function pairNames(directory: string): Promise<Map<string, boolean>> {
  const names = new Map<string, boolean>();
  for (const entry of (await readdir(directory)).sort()) {
    const match = /^(.+)\.(crt|key)$/.exec(entry);
    if (match) names.set(match[1]!, names.get(match[1]!) === true || match[2] === 'crt');
  }
  return names;
}

/**
 * TLS_CERT_DIR: `<host>.crt` + `<host>.key` pairs, chosen by SNI
 * (`*.example.org.crt` serves one label below example.org). Each pair is
 * checked on its own: one that does not load keeps its previous version in
 * service (or stays out, if new), with a log line and a metric. A pair is
 * dropped only when both its files are gone. A `.key` alone is ignored, so
 * ACME's CERT_DIR (whose layout this is) can be served as it is. Throws at
 * start when no pair loads.
 */
export async function createDirectorySource(
  options: DirectorySourceOptions,
): Promise<CertificateSource> {
  const { logger, metrics } = options;
  const directory = resolve(options.directory);
  const listeners = new ChangeListeners();
  const index = new HostIndex<LoadedCertificate>();
  const loaded = new Map<string, LoadedCertificate>();
  let fallback: LoadedCertificate | undefined;

  /** Reads every pair; returns whether anything served changed. */
  async function scan(initial: boolean): Promise<boolean> {
    let changed = false;
    const present = await pairNames(directory);
    for (const [name, hasCert] of present) {
      const old = loaded.get(name);
      // A lone key never served (ACME's account.key when this is CERT_DIR) is not a pair.
      if (!hasCert && !old) continue;
      try {
        const next = await readPair(join(directory, `${name}.crt`), join(directory, `${name}.key`));
        if (old?.info.fingerprint256 === next.info.fingerprint256) continue;
        loaded.set(name, next);
        changed = true;
        if (!initial) metrics.countReload('directory', 'reloaded');
        logger.info(
          { host: name, serial: next.info.serial, not_after: next.info.notAfter },
          initial ? 'TLS certificate loaded' : 'TLS certificate reloaded',
        );
      } catch (error) {
        if (!(error instanceof CertificateRejected)) throw error;
        metrics.countReload('directory', 'refused');
        logger.error(
          { host: name, directory, reason: error.reason, err: error.message },
          old
            ? 'TLS certificate not reloaded; the previous one stays in service'
            : 'TLS certificate not loaded',
        );
      }
    }
    for (const name of [...loaded.keys()]) {
      if (present.has(name)) continue;
      loaded.delete(name);
      changed = true;
      logger.info({ host: name, directory }, 'TLS certificate removed (both files are gone)');
    }
    if (changed) rebuild();
    return changed;
  }

  function rebuild(): void {
    for (const name of [...index.keys()]) index.delete(name);
    for (const [name, certificate] of loaded) {
      if (name !== DEFAULT_PAIR_NAME) index.set(name, certificate);
    }
    fallback = loaded.get(DEFAULT_PAIR_NAME) ?? loaded.values().next().value;
  }

  await scan(true);
  if (loaded.size === 0) {
    throw new CertificateRejected(
      'unreadable_certificate',
      `no usable <host>.crt + <host>.key pair in ${directory}`,
    );
  }

  const watcher = await watchForChanges({
    directories: [directory],
    signature: async () => {
      const names = await pairNames(directory).catch(() => new Map<string, boolean>());
      const files = [...names.keys()].flatMap((name) => [`${name}.crt`, `${name}.key`]);
      const parts = await Promise.all(files.map((file) => fileSignature(join(directory, file))));
      return parts.join('|');
    },
    onChange: async () => {
      if (await scan(false)) listeners.emit();
    },
    logger,
    debounceMs: options.debounceMs,
    pollMs: options.pollMs,
  });

  return {
    contextFor: (servername) => index.lookup(servername)?.context,
    defaultCertificate: () => fallback,
    certificates(): ServedCertificate[] {
      return [...loaded].map(([name, certificate]) => ({
        name,
        source: 'directory',
        certificate,
      }));
    },
    onChange: (listener) => listeners.add(listener),
    async close() {
      watcher.close();
    },
  };
}
