import { createHash, X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import { backoffDelay, type BackoffPolicy } from './backoff.js';
import type { LoadedCertificate } from './certificate-pair.js';
import type { CertificateSource } from './certificate-source.js';
import {
  certIdFor,
  encodeOcspRequest,
  readOcspResponse,
  type CertId,
  type OcspAnswer,
} from './ocsp-message.js';

/** POSTs an OCSP request and returns the body (bounded), or throws. */
export type OcspTransport = (url: string, request: Buffer) => Promise<Buffer>;

export interface OcspStaplerOptions {
  source: CertificateSource;
  logger: Logger;
  transport?: OcspTransport;
  /** After a failed fetch (default 1 min doubling to 1 h). */
  retry?: BackoffPolicy;
  /** Fetch again at the latest this long after a fetch (default: half the response's validity). */
  maxAgeMs?: number;
}

/** Responses are small; anything larger is not one. */
const MAX_RESPONSE_BYTES = 64 * 1024;
/** A response without nextUpdate is used for this long. */
const NO_NEXT_UPDATE_MS = 60 * 60_000;

/** OCSP over HTTP POST (RFC 6960 appendix A) with fetch, 10 s at most. */
export const postOcspRequest: OcspTransport = async (url, request) => {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response' },
    body: new Uint8Array(request),
    signal: AbortSignal.timeout(10_000),
  });
  if (!response.ok) throw new Error(`the responder answered HTTP ${response.status}`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response.body ?? []) {
    size += chunk.length;
    if (size > MAX_RESPONSE_BYTES)
      throw new Error(`the response exceeds ${MAX_RESPONSE_BYTES} bytes`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
};

interface Entry {
  key: string;
  name: string;
  url: string;
  id: CertId;
  request: Buffer;
  issuer: Buffer;
  /** The DER response stapled now, while it is valid. */
  response?: Buffer;
  answer?: OcspAnswer;
  validUntil: number;
  failures: number;
  timer?: NodeJS.Timeout;
}

/** The responder URL of a certificate's Authority Information Access, if any. */
function responderUrl(cert: X509Certificate): string | undefined {
  const line = cert.infoAccess?.split('\n').find((l) => l.startsWith('OCSP - URI:'));
  const url = line?.slice('OCSP - URI:'.length).trim();
  return url && /^https?:\/\//.test(url) ? url : undefined;
}

/** The issuer of the leaf among the certificates of its chain file. */
function issuerInChain(leaf: X509Certificate, chainPem: string): X509Certificate | undefined {
  const pems =
    chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return pems
    .slice(1)
    .map((pem) => new X509Certificate(pem))
    .find((candidate) => leaf.checkIssued(candidate) && leaf.verify(candidate.publicKey));
}

const keyOf = (der: Buffer) => createHash('sha256').update(der).digest('base64');

/**
 * OCSP stapling for every served certificate whose chain names a responder
 * and carries its issuer: the response is fetched in the background, checked
 * (readOcspResponse), refreshed at half its validity, and stapled from
 * memory during handshakes. A failed fetch keeps the last good response
 * while it is valid and retries with backoff; a handshake never waits for
 * a responder.
 */
export class OcspStapler {
  private readonly entries = new Map<string, Entry>();
  private readonly transport: OcspTransport;
  private closed = false;

  constructor(private readonly options: OcspStaplerOptions) {
    this.transport = options.transport ?? postOcspRequest;
    options.source.onChange(() =>
      this.track(options.source.certificates().map((c) => c.certificate)),
    );
    this.track(options.source.certificates().map((c) => c.certificate));
  }

  /** The TLS server's 'OCSPRequest' listener. */
  readonly handle = (
    certificate: Buffer,
    _issuer: Buffer,
    done: (err: Error | null, response?: Buffer) => void,
  ): void => {
    const entry = this.entries.get(keyOf(certificate));
    done(null, entry?.response && entry.validUntil > Date.now() ? entry.response : undefined);
  };

  /** What is stapled for a certificate now (for status and tests). */
  stapled(certificate: LoadedCertificate): OcspAnswer | undefined {
    const entry = this.entries.get(keyOf(new X509Certificate(certificate.pem.cert).raw));
    return entry?.response && entry.validUntil > Date.now() ? entry.answer : undefined;
  }

  close(): void {
    this.closed = true;
    for (const entry of this.entries.values()) clearTimeout(entry.timer);
    this.entries.clear();
  }

  private track(certificates: LoadedCertificate[]): void {
    if (this.closed) return;
    const wanted = new Set<string>();
    for (const certificate of certificates) {
      const leaf = new X509Certificate(certificate.pem.cert);
      const key = keyOf(leaf.raw);
      wanted.add(key);
      if (this.entries.has(key)) continue;
      const url = responderUrl(leaf);
      const issuer = url ? issuerInChain(leaf, certificate.pem.cert) : undefined;
      if (!url || !issuer) continue;
      const id = certIdFor(leaf.raw, issuer.raw);
      const entry: Entry = {
        key,
        name: certificate.info.names[0] ?? leaf.subject,
        url,
        id,
        request: encodeOcspRequest(id),
        issuer: issuer.raw,
        validUntil: 0,
        failures: 0,
      };
      this.entries.set(key, entry);
      void this.fetch(entry);
    }
    for (const [key, entry] of this.entries) {
      if (wanted.has(key)) continue;
      clearTimeout(entry.timer);
      this.entries.delete(key);
    }
  }

  private async fetch(entry: Entry): Promise<void> {
    const { logger } = this.options;
    let delay: number;
    try {
      const der = await this.transport(entry.url, entry.request);
      const answer = readOcspResponse(der, entry.id, entry.issuer, new Date());
      if (answer.status !== 'good') {
        entry.response = undefined;
        logger.error(
          { certificate: entry.name, ocsp_status: answer.status },
          'OCSP responder says the certificate is not good; not stapling',
        );
      } else {
        entry.response = der;
        entry.answer = answer;
        entry.validUntil =
          answer.nextUpdate?.getTime() ?? answer.thisUpdate.getTime() + NO_NEXT_UPDATE_MS;
      }
      entry.failures = 0;
      const until = answer.nextUpdate?.getTime() ?? answer.thisUpdate.getTime() + NO_NEXT_UPDATE_MS;
      delay = Math.max(1000, (until - Date.now()) / 2);
      if (this.options.maxAgeMs !== undefined) delay = Math.min(delay, this.options.maxAgeMs);
    } catch (error) {
      entry.failures += 1;
      delay = backoffDelay(
        this.options.retry ?? { firstMs: 60_000, maxMs: 3_600_000 },
        entry.failures,
      );
      logger.warn(
        {
          certificate: entry.name,
          url: entry.url,
          err: (error as Error).message,
          retry_in_ms: delay,
          stapling: entry.validUntil > Date.now(),
        },
        'OCSP response not refreshed',
      );
    }
    // Closed, or the certificate is no longer served.
    if (this.closed || this.entries.get(entry.key) !== entry) return;
    entry.timer = setTimeout(() => void this.fetch(entry), Math.min(delay, 2_147_483_647));
    entry.timer.unref();
  }
}
