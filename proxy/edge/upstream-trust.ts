import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';

/**
 * UPSTREAM_CA_FILE as read at start: the certificates an https slot's
 * certificate must chain to. Like nginx's proxy_ssl_trusted_certificate or
 * curl's --cacert, it replaces Node's default roots for the slots (a slot
 * behind a private CA needs nothing else; certificate checks stay on).
 */
export interface UpstreamCa {
  file: string;
  /** The PEM certificates, as Node's TLS `ca` option takes them. */
  pem: string;
}

/** What /admin/status shows of a slot's TLS: null for an http slot. */
export interface SlotTls {
  /** UPSTREAM_CA_FILE, or null: Node's default roots. */
  ca_file: string | null;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/**
 * Reads and checks UPSTREAM_CA_FILE (once, at start: sync I/O is fine there).
 * Throws an Error whose message says what is wrong with the file.
 */
export function readUpstreamCa(file: string): UpstreamCa {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new Error(`cannot read ${file}${code ? ` (${code})` : ''}`);
  }
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) {
    throw new Error(`${file} holds no PEM certificate (-----BEGIN CERTIFICATE----- block)`);
  }
  blocks.forEach((block, i) => {
    try {
      new X509Certificate(block);
    } catch {
      throw new Error(`certificate ${i + 1} of ${file} is not a valid X.509 certificate`);
    }
  });
  const pem = blocks.join('\n');
  try {
    // What the agents will do with it: fails here rather than on the first request.
    createSecureContext({ ca: pem });
  } catch (error) {
    throw new Error(`${file} cannot be used as trust: ${(error as Error).message}`);
  }
  return { file, pem };
}

/** The slot's TLS as /admin/status shows it. */
export function slotTls(url: string, ca: UpstreamCa | undefined): SlotTls | null {
  if (!url.startsWith('https:')) return null;
  return { ca_file: ca?.file ?? null };
}
