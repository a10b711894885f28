import { z } from 'zod';
import { parseConfig, withoutEmpty } from '../../common/config.js';
import { durationSchema } from '../../common/duration.js';

export const LETS_ENCRYPT_DIRECTORY = 'https://acme-v02.api.letsencrypt.org/directory';

const PORT_MESSAGE = 'must be a port number (0-65535)';
const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/** A DNS name an HTTP-01 challenge can prove: LDH labels, no wildcard, not an IP address. */
function dnsNameProblem(name: string): string | undefined {
  if (name.startsWith('*.')) {
    return `${name}: wildcard names need a DNS-01 challenge; ACME here proves names over HTTP-01`;
  }
  if (name.length > 253) return `${name}: longer than 253 characters`;
  const labels = name.split('.');
  if (!labels.every((label) => LABEL.test(label))) {
    return `${name}: not a DNS name (letters, digits and hyphens between dots)`;
  }
  if (/^\d+$/.test(labels.at(-1) ?? '')) return `${name}: an IP address, not a DNS name`;
  return undefined;
}

/** `ACME_DOMAINS`: comma-separated DNS names, lower-cased, duplicates dropped. */
const domainList = z
  .string()
  .optional()
  .transform((text, ctx) => {
    if (text === undefined) return [];
    const names = [
      ...new Set(
        text
          .split(',')
          .map((name) => name.trim().toLowerCase())
          .filter((name) => name !== ''),
      ),
    ];
    const problems = names.map(dnsNameProblem).filter((p) => p !== undefined);
    for (const message of problems) ctx.addIssue({ code: 'custom', message });
    if (names.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'must name at least one domain' });
    }
    return problems.length > 0 || names.length === 0 ? z.NEVER : names;
  });

/**
 * The certificate layer's variables, as a zod shape so the proxy's own schema
 * can spread it in (`z.object({ ...proxyShape, ...tlsEnvShape })`) and run
 * refineTlsEnv in its superRefine.
 */
export const tlsEnvShape = {
  /** The TLS listener; it listens only when a certificate source is set. */
  PROXY_TLS_PORT: z.coerce
    .number({ error: PORT_MESSAGE })
    .int(PORT_MESSAGE)
    .min(0, PORT_MESSAGE)
    .max(65_535, PORT_MESSAGE)
    .default(443),
  TLS_CERT_FILE: z.string().optional(),
  TLS_KEY_FILE: z.string().optional(),
  /** `<host>.crt` + `<host>.key` pairs chosen by SNI. */
  TLS_CERT_DIR: z.string().optional(),
  ACME_DOMAINS: domainList,
  ACME_EMAIL: z
    .string()
    .regex(/^[^\s@,]+@[^\s@,]+\.[^\s@,]+$/, 'must be an e-mail address')
    .optional(),
  ACME_DIRECTORY_URL: z
    .string()
    .default(LETS_ENCRYPT_DIRECTORY)
    .refine(
      (v) => /^https:\/\/[^/]+/.test(v) && URL.canParse(v),
      'must be an https URL (RFC 8555 requires HTTPS)',
    ),
  /** PEM bundle trusted for the ACME directory, besides the system's (a test CA). */
  ACME_CA_FILE: z.string().optional(),
  // An offset from expiry, never one timer: it may exceed what setTimeout holds.
  ACME_RENEW_BEFORE: durationSchema('30d', { maxMs: 365 * 86_400_000 }).refine(
    (ms) => ms >= 60_000,
    'must be at least 1m (renewal needs time before the certificate expires)',
  ),
  /** Account key and certificates when REDIS_URL is unset. */
  CERT_DIR: z.string().default('./.togather/certs'),
  /** Encrypts private keys stored in Redis (AES-256-GCM); a random string. */
  CERT_ENCRYPTION_KEY: z.string().min(32, 'must be at least 32 characters').optional(),
};

/** What refineTlsEnv reads: the TLS shape's output plus the proxy variables it relates to. */
export interface TlsEnvRelations {
  TLS_CERT_FILE?: string | undefined;
  TLS_KEY_FILE?: string | undefined;
  TLS_CERT_DIR?: string | undefined;
  ACME_DOMAINS?: string[] | undefined;
  CERT_ENCRYPTION_KEY?: string | undefined;
  PROXY_TLS_PORT?: number | undefined;
  PROXY_PORT?: number | undefined;
  REDIS_URL?: string | undefined;
}

/**
 * Checks across variables. It reads each field only when it parsed, so with
 * `when` (as proxy/config.ts does) it runs even when other variables are bad
 * and every problem is listed at once.
 */
export function refineTlsEnv(env: TlsEnvRelations, ctx: z.RefinementCtx): void {
  const issue = (path: string, message: string) =>
    ctx.addIssue({ code: 'custom', path: [path], message });
  const hasFile = env.TLS_CERT_FILE !== undefined;
  const hasKey = env.TLS_KEY_FILE !== undefined;
  if (hasFile && !hasKey) issue('TLS_KEY_FILE', 'is required with TLS_CERT_FILE');
  if (hasKey && !hasFile) issue('TLS_CERT_FILE', 'is required with TLS_KEY_FILE');
  if ((hasFile || hasKey) && env.TLS_CERT_DIR !== undefined) {
    issue('TLS_CERT_DIR', 'set either TLS_CERT_DIR or TLS_CERT_FILE + TLS_KEY_FILE, not both');
  }
  const acme = Array.isArray(env.ACME_DOMAINS) && env.ACME_DOMAINS.length > 0;
  if (acme && env.REDIS_URL !== undefined && env.CERT_ENCRYPTION_KEY === undefined) {
    issue(
      'CERT_ENCRYPTION_KEY',
      'is required when ACME_DOMAINS and REDIS_URL are set (it encrypts the private keys kept in Redis; at least 32 characters)',
    );
  }
  const tls = hasFile || env.TLS_CERT_DIR !== undefined || acme;
  if (
    tls &&
    typeof env.PROXY_TLS_PORT === 'number' &&
    env.PROXY_TLS_PORT !== 0 &&
    env.PROXY_TLS_PORT === env.PROXY_PORT
  ) {
    issue('PROXY_TLS_PORT', `must differ from PROXY_PORT (${env.PROXY_PORT})`);
  }
}

/** One entry of HTTPS_REDIRECT_EXCEPT: an exact path, or (`/path/*`) every path below a prefix. */
export interface RedirectException {
  path: string;
  prefix: boolean;
}

const EXCEPTION_PATH = /^\/[^\s?#*]*\*?$/;
const HSTS_MESSAGE = 'must be a max-age in seconds (0 to 2147483647, e.g. 31536000) or off';
const REDIRECT_MESSAGE = 'must be on or off (on|off|true|false|1|0)';

/**
 * What the edge does with TLS on: the plain listener's redirect to HTTPS and
 * Strict-Transport-Security on TLS answers. Spread into the proxy's schema
 * beside tlsEnvShape; checked against it by refineHttpsEnv.
 */
export const httpsEnvShape = {
  /** Unset: on exactly when a certificate source is set. */
  HTTPS_REDIRECT: z
    .enum(['on', 'off', 'true', 'false', '1', '0'], { error: REDIRECT_MESSAGE })
    .optional()
    .transform((v) => (v === undefined ? undefined : v === 'on' || v === 'true' || v === '1')),
  /** Comma-separated paths answered over plain HTTP too (`/health`, `/public/*`). */
  HTTPS_REDIRECT_EXCEPT: z
    .string()
    .optional()
    .transform((text, ctx): RedirectException[] => {
      if (text === undefined) return [];
      const entries = text
        .split(',')
        .map((entry) => entry.trim())
        .filter((entry) => entry !== '');
      const bad = entries.filter((entry) => !EXCEPTION_PATH.test(entry));
      for (const entry of bad) {
        ctx.addIssue({
          code: 'custom',
          message: `${entry}: not a path (start with /, no query; a trailing * matches every path below it)`,
        });
      }
      if (bad.length > 0) return z.NEVER;
      return entries.map((entry) =>
        entry.endsWith('*')
          ? { path: entry.slice(0, -1), prefix: true }
          : { path: entry, prefix: false },
      );
    }),
  /** Strict-Transport-Security max-age in seconds; null: off. */
  HSTS: z
    .string()
    .default('31536000')
    .transform((text, ctx): number | null => {
      const value = text.trim().toLowerCase();
      if (value === 'off') return null;
      if (!/^\d{1,10}$/.test(value) || Number(value) > 2_147_483_647) {
        ctx.addIssue({ code: 'custom', message: HSTS_MESSAGE });
        return z.NEVER;
      }
      return Number(value);
    }),
};

/** What refineHttpsEnv reads: the HTTPS shape's output and the certificate sources. */
export interface HttpsEnvRelations extends TlsEnvRelations {
  HTTPS_REDIRECT?: boolean | undefined;
}

/** HTTPS_REDIRECT=on needs a TLS listener to redirect to. */
export function refineHttpsEnv(env: HttpsEnvRelations, ctx: z.RefinementCtx): void {
  const acme = Array.isArray(env.ACME_DOMAINS) && env.ACME_DOMAINS.length > 0;
  const tls = env.TLS_CERT_FILE !== undefined || env.TLS_CERT_DIR !== undefined || acme;
  if (env.HTTPS_REDIRECT === true && !tls) {
    ctx.addIssue({
      code: 'custom',
      path: ['HTTPS_REDIRECT'],
      message:
        'is on but there is no TLS listener to redirect to (set TLS_CERT_FILE + TLS_KEY_FILE, TLS_CERT_DIR or ACME_DOMAINS)',
    });
  }
}

const standaloneTlsSchema = z
  .object({
    ...tlsEnvShape,
    // Validated by the proxy's schema; read here only for the cross checks.
    PROXY_PORT: z.coerce.number().optional().catch(undefined),
    REDIS_URL: z.string().optional(),
  })
  .superRefine(refineTlsEnv, {
    when: (payload) => typeof payload.value === 'object' && payload.value !== null,
  });

export type TlsConfig = z.output<z.ZodObject<typeof tlsEnvShape>>;

/** Reads the certificate layer's variables on their own; throws ConfigError listing every problem. */
export function loadTlsConfig(env: NodeJS.ProcessEnv = process.env): TlsConfig {
  return parseConfig(standaloneTlsSchema, withoutEmpty(env));
}

/** Which certificate sources the configuration sets (none: no TLS listener). */
export function certificateSources(config: TlsConfig): Array<'file' | 'directory' | 'acme'> {
  const sources: Array<'file' | 'directory' | 'acme'> = [];
  if (config.TLS_CERT_FILE !== undefined) sources.push('file');
  if (config.TLS_CERT_DIR !== undefined) sources.push('directory');
  if (config.ACME_DOMAINS.length > 0) sources.push('acme');
  return sources;
}
