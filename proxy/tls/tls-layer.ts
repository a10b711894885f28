import { readFile } from 'node:fs/promises';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { describeRedisFailure, fastFailRedisOptions } from '../state/redis-store.js';
import { soloFleet, type AcmeFleet } from './acme-fleet.js';
import type { AcmeIssuerOptions } from './acme-issuer.js';
import { AcmeManager, type AcmeDomainStatus, type AcmeManagerOptions } from './acme-manager.js';
import { CertificateRejected } from './certificate-pair.js';
import { combineSources, type CertificateSource } from './certificate-source.js';
import { Http01Challenges } from './challenge-responder.js';
import type { CertificateStore } from './cert-store.js';
import { createDirectorySource } from './directory-source.js';
import { FileCertificateStore } from './file-cert-store.js';
import { createFilePairSource } from './file-pair-source.js';
import { KeyEncryption } from './key-encryption.js';
import { OcspStapler } from './ocsp-stapler.js';
import { RedisCertificateStore } from './redis-cert-store.js';
import { createRedisFleet } from './redis-fleet.js';
import { certificateSources, type TlsConfig } from './tls-config.js';
import { TlsMetrics } from './tls-metrics.js';

/** The certificate layer could not start; the message says which variable and why. */
export class TlsStartError extends Error {
  override name = 'TlsStartError';
}

export interface TlsLayerOptions {
  config: TlsConfig;
  /** REDIS_URL and REDIS_KEY_PREFIX: ACME keeps its state in Redis when set. */
  redis?: { url: string; keyPrefix: string };
  logger: Logger;
  /** The admin listener's registry; the layer's metrics are registered on it. */
  registry: Registry;
  /**
   * Start ordering at once (default). togather proxy passes false and calls
   * start() once its plain listener answers the HTTP-01 challenges.
   */
  autoStart?: boolean;
  /** Timings for tests; production uses the defaults. */
  tuning?: {
    watch?: { debounceMs?: number; pollMs?: number };
    manager?: Pick<AcmeManagerOptions, 'retry' | 'lockWaitMs' | 'storePollMs'>;
    issuer?: Pick<AcmeIssuerOptions, 'statusPoll' | 'requestTimeoutMs'>;
  };
}

export interface TlsStatus {
  certificates: Array<{
    name: string;
    source: 'file' | 'directory' | 'acme';
    serial: string;
    not_before: string;
    not_after: string;
  }>;
  /** null without ACME_DOMAINS. */
  acme: { directory: string; store: string; domains: AcmeDomainStatus[] } | null;
}

export interface TlsLayer {
  /** What the TLS listener serves (createTlsListener's `source`). */
  source: CertificateSource;
  /** For the plain listener, before it forwards; undefined without ACME. */
  challenges: Http01Challenges | undefined;
  acme: AcmeManager | undefined;
  /** Staples OCSP for certificates whose chain names a responder (createTlsListener's `ocsp`). */
  ocsp: OcspStapler;
  metrics: TlsMetrics;
  /** For /admin/status. */
  status(): TlsStatus;
  /** Starts ACME's work (with autoStart: false); no-op when started or without ACME. */
  start(): void;
  close(): Promise<void>;
}

async function readCaFile(path: string): Promise<string> {
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new TlsStartError(`ACME_CA_FILE: cannot read ${path} (${error.code ?? error.message})`);
  });
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    throw new TlsStartError(`ACME_CA_FILE: ${path} holds no PEM certificate`);
  }
  return text;
}

async function connect(url: string, name: string): Promise<Redis> {
  const redis = new Redis(url, { ...fastFailRedisOptions(), connectionName: name });
  // Outages after start are logged by the calls that fail; ioredis reconnects by itself.
  redis.on('error', () => undefined);
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    throw new TlsStartError(`cannot reach redis for ACME: ${describeRedisFailure(error, 1000)}`);
  }
  return redis;
}

/**
 * Builds the certificate layer the configuration asks for: the files or the
 * directory, ACME with its store (Redis when set, else CERT_DIR) and fleet,
 * all as one CertificateSource. Undefined when no certificate source is set
 * (no TLS listener then). Throws TlsStartError when a source cannot start.
 */
export async function startTlsLayer(options: TlsLayerOptions): Promise<TlsLayer | undefined> {
  const { config, logger } = options;
  const kinds = certificateSources(config);
  if (kinds.length === 0) return undefined;
  const metrics = new TlsMetrics(options.registry);
  const sources: CertificateSource[] = [];
  const cleanups: Array<() => Promise<void> | void> = [];
  const closeAll = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  };
  let acme: AcmeManager | undefined;
  let challenges: Http01Challenges | undefined;
  let storeLocation = '';
  try {
    if (config.ACME_DOMAINS.length > 0) {
      const caPem = config.ACME_CA_FILE ? await readCaFile(config.ACME_CA_FILE) : undefined;
      challenges = new Http01Challenges();
      let store: CertificateStore;
      let fleet: AcmeFleet;
      if (options.redis) {
        if (!config.CERT_ENCRYPTION_KEY) {
          throw new TlsStartError(
            'CERT_ENCRYPTION_KEY: is required with ACME_DOMAINS and REDIS_URL',
          );
        }
        const redis = await connect(options.redis.url, 'togather-proxy-acme');
        cleanups.push(() => void redis.disconnect());
        const subscriber = await connect(options.redis.url, 'togather-proxy-acme-events');
        cleanups.push(() => void subscriber.disconnect());
        const encryption = new KeyEncryption(config.CERT_ENCRYPTION_KEY);
        store = new RedisCertificateStore({
          redis,
          keyPrefix: options.redis.keyPrefix,
          encryption,
        });
        fleet = await createRedisFleet({
          redis,
          subscriber,
          keyPrefix: options.redis.keyPrefix,
          challenges,
          logger,
        });
        cleanups.push(() => fleet.close());
      } else {
        store = new FileCertificateStore(config.CERT_DIR);
        fleet = soloFleet(challenges);
      }
      storeLocation = `${store.kind} ${store.location}`;
      // acme-client (with axios and its crypto) is about 9 MB of heap: loaded only with ACME on.
      const { createAcmeIssuer } = await import('./acme-issuer.js');
      const issuer = createAcmeIssuer({
        directoryUrl: config.ACME_DIRECTORY_URL,
        email: config.ACME_EMAIL,
        caPem,
        store,
        fleet,
        logger,
        ...options.tuning?.issuer,
      });
      cleanups.push(() => issuer.close());
      acme = new AcmeManager({
        domains: config.ACME_DOMAINS,
        renewBeforeMs: config.ACME_RENEW_BEFORE,
        store,
        issuer,
        fleet,
        metrics,
        logger,
        ...options.tuning?.manager,
      });
      cleanups.push(() => acme?.close());
      sources.push(acme);
    }
    if (config.TLS_CERT_FILE !== undefined && config.TLS_KEY_FILE !== undefined) {
      const files = await createFilePairSource({
        certFile: config.TLS_CERT_FILE,
        keyFile: config.TLS_KEY_FILE,
        logger,
        metrics,
        ...options.tuning?.watch,
      }).catch(rejected('TLS_CERT_FILE/TLS_KEY_FILE'));
      sources.push(files);
      cleanups.push(() => files.close());
    }
    if (config.TLS_CERT_DIR !== undefined) {
      const directory = await createDirectorySource({
        directory: config.TLS_CERT_DIR,
        logger,
        metrics,
        ...options.tuning?.watch,
      }).catch(rejected('TLS_CERT_DIR'));
      sources.push(directory);
      cleanups.push(() => directory.close());
    }
  } catch (error) {
    await closeAll();
    throw error;
  }
  const source = combineSources(sources);
  metrics.attach(() => source.certificates());
  const ocsp = new OcspStapler({ source, logger });
  cleanups.push(() => ocsp.close());
  let started = false;
  const start = () => {
    if (started) return;
    started = true;
    acme?.start();
  };
  if (options.autoStart ?? true) start();
  logger.info({ sources: kinds, acme_store: storeLocation || null }, 'certificate layer started');
  return {
    source,
    challenges,
    acme,
    ocsp,
    metrics,
    start,
    status: () => ({
      certificates: source.certificates().map((served) => ({
        name: served.name,
        source: served.source,
        serial: served.certificate.info.serial,
        not_before: served.certificate.info.notBefore.toISOString(),
        not_after: served.certificate.info.notAfter.toISOString(),
      })),
      acme: acme
        ? { directory: config.ACME_DIRECTORY_URL, store: storeLocation, domains: acme.status() }
        : null,
    }),
    close: closeAll,
  };
}

function rejected(variable: string) {
  return (error: unknown): never => {
    if (error instanceof CertificateRejected) {
      throw new TlsStartError(`${variable}: ${error.message}`);
    }
    if ((error as NodeJS.ErrnoException).code !== undefined) {
      throw new TlsStartError(`${variable}: ${(error as Error).message}`);
    }
    throw error;
  };
}
