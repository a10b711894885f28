import { Agent } from 'node:https';
import { rootCertificates } from 'node:tls';
import * as acme from 'acme-client';
import type { Logger } from 'pino';
import type { AcmeFleet } from './acme-fleet.js';
import type { CertificatePem } from './certificate-pair.js';
import type { CertificateStore } from './cert-store.js';

/** Obtains a certificate for one domain. */
export interface CertificateIssuer {
  issue(domain: string): Promise<CertificatePem>;
  close(): void;
}

export interface AcmeIssuerOptions {
  directoryUrl: string;
  email?: string;
  /** PEM trusted for the directory besides Node's roots (ACME_CA_FILE's content). */
  caPem?: string;
  store: Pick<CertificateStore, 'loadAccountKey' | 'saveAccountKey'>;
  fleet: Pick<AcmeFleet, 'shareChallenge' | 'withdrawChallenge'>;
  logger: Logger;
  /** Each HTTP request to the CA (default 30 s; axios has none). */
  requestTimeoutMs?: number;
  /** Polling of pending authorizations and orders (acme-client's default: 5 s doubling to 30 s). */
  statusPoll?: { minMs: number; maxMs: number; attempts: number };
  /** How long a challenge token stays answerable (default 10 min). */
  challengeTtlMs?: number;
}

type RequestInterceptor = NonNullable<Parameters<typeof acme.axios.interceptors.request.use>[0]>;

/**
 * acme-client talks through one axios instance for the whole process. The
 * CA trust and the timeout are added by an interceptor that touches only
 * requests to this directory's origin, and is removed on close.
 */
function trustDirectory(origin: string, caPem: string | undefined, timeoutMs: number): () => void {
  const agent = caPem
    ? new Agent({ ca: [...rootCertificates, caPem], keepAlive: true, maxSockets: 4 })
    : undefined;
  const intercept: RequestInterceptor = (config) => {
    if (config.url !== undefined && URL.canParse(config.url)) {
      if (new URL(config.url).origin === origin) {
        if (agent) config.httpsAgent = agent;
        if (!config.timeout) config.timeout = timeoutMs;
      }
    }
    return config;
  };
  const id = acme.axios.interceptors.request.use(intercept);
  return () => {
    acme.axios.interceptors.request.eject(id);
    agent?.destroy();
  };
}

/**
 * RFC 8555 over HTTP-01 with acme-client: one account per store (its key
 * kept there, created on first use), an ECDSA P-256 key per certificate.
 * Challenge tokens are shared with the fleet before the CA is asked to
 * validate, and withdrawn after. acme-client's own check of the challenge
 * URL is skipped: a proxy often cannot reach its own public address
 * (NAT hairpinning), and the CA's validation is the one that counts.
 */
export function createAcmeIssuer(options: AcmeIssuerOptions): CertificateIssuer {
  const { store, fleet, logger } = options;
  const origin = new URL(options.directoryUrl).origin;
  const untrust = trustDirectory(origin, options.caPem, options.requestTimeoutMs ?? 30_000);
  const challengeTtlMs = options.challengeTtlMs ?? 10 * 60_000;
  let client: Promise<acme.Client> | undefined;

  async function accountKey(): Promise<string> {
    const stored = await store.loadAccountKey();
    if (stored !== undefined) return stored;
    const created = (await acme.crypto.createPrivateEcdsaKey('P-256')).toString('utf8');
    await store.saveAccountKey(created);
    // Another proxy may have saved its key first: use whatever the store kept.
    const kept = (await store.loadAccountKey()) ?? created;
    logger.info({ directory: options.directoryUrl }, 'ACME account key created');
    return kept;
  }

  function getClient(): Promise<acme.Client> {
    client ??= accountKey().then(
      (key) =>
        new acme.Client({
          directoryUrl: options.directoryUrl,
          accountKey: key,
          backoffMin: options.statusPoll?.minMs,
          backoffMax: options.statusPoll?.maxMs,
          backoffAttempts: options.statusPoll?.attempts,
        }),
    );
    // A failed start (store unreachable) is retried at the next issue().
    client.catch(() => (client = undefined));
    return client;
  }

  return {
    async issue(domain) {
      const acmeClient = await getClient();
      const [key, csr] = await acme.crypto.createCsr(
        { commonName: domain, altNames: [domain] },
        await acme.crypto.createPrivateEcdsaKey('P-256'),
      );
      const cert = await acmeClient.auto({
        csr,
        email: options.email,
        termsOfServiceAgreed: true,
        challengePriority: ['http-01'],
        skipChallengeVerification: true,
        challengeCreateFn: async (_authz, challenge, keyAuthorization) => {
          await fleet.shareChallenge(challenge.token, keyAuthorization, challengeTtlMs);
        },
        challengeRemoveFn: async (_authz, challenge) => {
          await fleet.withdrawChallenge(challenge.token);
        },
      });
      return { cert, key: key.toString('utf8') };
    },
    close() {
      untrust();
    },
  };
}
