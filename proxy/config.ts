import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { parseConfig, withoutEmpty } from '../common/config.js';
import { durationSchema } from '../common/duration.js';
import { isLoopbackHost } from '../common/listen-address.js';
import { LOG_LEVELS } from '../common/logger.js';
import { sizeSchema } from '../common/size.js';
import { SLOTS } from '../common/slot.js';
import { readUpstreamCa, type UpstreamCa } from './edge/upstream-trust.js';
import {
  certificateSources,
  httpsEnvShape,
  refineHttpsEnv,
  refineTlsEnv,
  tlsEnvShape,
} from './tls/tls-config.js';

const port = (fallback: number) =>
  z.coerce
    .number({ error: 'must be a port number (0-65535)' })
    .int('must be a port number (0-65535)')
    .min(0, 'must be a port number (0-65535)')
    .max(65_535, 'must be a port number (0-65535)')
    .default(fallback);
const onOff = (fallback: 'on' | 'off') =>
  z
    .enum(['on', 'off', 'true', 'false', '1', '0'])
    .default(fallback)
    .transform((v) => v === 'on' || v === 'true' || v === '1');
const httpUrl = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .refine((v) => /^https?:\/\/[^/]+/.test(v) && URL.canParse(v), 'must be an http(s) URL');

/** One DNS label: letters, digits and inner hyphens. */
const DNS_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
/** A bracketed IPv6 literal, as it stands in a Host header. */
const IPV6_LITERAL = /^\[[0-9a-f:.]+\]$/;

/** A host name as a Host header carries it without its port (lower-case, no trailing dot). */
function isHostName(name: string): boolean {
  if (IPV4.test(name) || IPV6_LITERAL.test(name)) return true;
  return name.length <= 253 && name.split('.').every((label) => DNS_LABEL.test(label));
}

/** `ALLOWED_HOSTS`: comma-separated host names, lower-cased, a trailing dot dropped. */
const allowedHosts = z
  .string()
  .optional()
  .transform((text, ctx): readonly string[] | undefined => {
    if (text === undefined) return undefined;
    const names = text
      .split(',')
      .map((name) => name.trim().toLowerCase().replace(/\.$/, ''))
      .filter((name) => name !== '');
    const bad = names.filter((name) => !isHostName(name));
    for (const name of bad) {
      ctx.addIssue({
        code: 'custom',
        message: `"${name}" is not a host name (list names such as events.example.org, without scheme, port, path or wildcard)`,
      });
    }
    if (names.length === 0) ctx.addIssue({ code: 'custom', message: 'lists no host name' });
    return bad.length > 0 || names.length === 0 ? z.NEVER : [...new Set(names)];
  });

/** A value Node can write as a header: printable ASCII and tabs, one line. */
const headerValue = z
  .string()
  .regex(/^[\t\x20-\x7e]+$/, 'must be one line of printable ASCII (a header value)')
  .optional();

/** Every variable `togather proxy` reads (docs/architecture.md, Configuration → Proxy). */
const proxyEnvSchema = z
  .object({
    PROXY_HOST: z.string().default('0.0.0.0'),
    PROXY_PORT: port(80),
    ADMIN_HOST: z.string().default('127.0.0.1'),
    ADMIN_PORT: port(9080),
    /** Binding the admin listener off loopback must be asked for explicitly. */
    ADMIN_ALLOW_REMOTE: onOff('off'),
    ADMIN_API_KEY: z
      .string({ error: 'is required (the admin API key, at least 32 characters)' })
      .min(32, 'must be at least 32 characters'),
    BLUE_URL: httpUrl('http://togather-server-blue:8080'),
    GREEN_URL: httpUrl('http://togather-server-green:8080'),
    /** Trust for https slot URLs, read at start (certificate checks stay on without it). */
    UPSTREAM_CA_FILE: z
      .string()
      .optional()
      .transform((file, ctx): UpstreamCa | undefined => {
        if (file === undefined) return undefined;
        try {
          return readUpstreamCa(file);
        } catch (error) {
          ctx.addIssue({ code: 'custom', message: (error as Error).message });
          return z.NEVER;
        }
      }),
    REDIS_URL: z
      .string()
      .refine((v) => /^rediss?:\/\//.test(v), 'must be a redis:// or rediss:// URL')
      .optional(),
    STATE_FILE: z.string().default('./.togather/proxy-state.json'),
    REDIS_KEY_PREFIX: z.string().min(1).default('togather:'),
    DEFAULT_SLOT: z.enum(SLOTS).default('blue'),
    HEALTH_PATH: z.string().startsWith('/', 'must start with /').default('/health'),
    DRAIN_TIMEOUT: durationSchema('30s'),
    UPSTREAM_TIMEOUT: durationSchema('60s'),
    /** Client-side limits of the public listener. */
    HEADERS_TIMEOUT: durationSchema('20s'),
    REQUEST_TIMEOUT: durationSchema('120s'),
    /** Longer than the 60 s idle timeout of typical cloud load balancers. */
    KEEP_ALIVE_TIMEOUT: durationSchema('75s'),
    MAX_HEADER_SIZE: z.coerce.number().int().min(1024).max(1_048_576).default(16_384),
    /** Client connections the public listener holds at once; 0: no limit. */
    MAX_CONNECTIONS: z.coerce.number().int().min(0).default(10_000),
    SHUTDOWN_TIMEOUT: durationSchema('30s'),
    TRUST_PROXY: onOff('off'),
    ACCESS_LOG: onOff('on'),
    /** Edge policy (proxy/edge): compression, request body limit, security headers, host names. */
    COMPRESSION: onOff('on'),
    /** Largest request body forwarded; 0: no limit. */
    MAX_BODY_SIZE: sizeSchema('10mb'),
    SECURITY_HEADERS: onOff('on'),
    CONTENT_SECURITY_POLICY: headerValue,
    /** Unset: every host name is served. */
    ALLOWED_HOSTS: allowedHosts,
    LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
    LOG_FORMAT: z.enum(['json', 'pretty']).default('json'),
    /**
     * Worker processes serving the public port (node:cluster); 1: this
     * process serves it; `auto`: one per core this process may run on.
     */
    PROXY_WORKERS: z.preprocess(
      (value) => (value === 'auto' ? String(autoWorkers()) : value),
      z.coerce
        .number({ error: 'must be a whole number from 1 to 64' })
        .int('must be a whole number from 1 to 64')
        .min(1, 'must be a whole number from 1 to 64')
        .max(64, 'must be a whole number from 1 to 64')
        .default(1),
    ),
    /** The TLS listener, its certificates and ACME (proxy/tls/tls-config.ts). */
    ...tlsEnvShape,
    /** The redirect to HTTPS and HSTS. */
    ...httpsEnvShape,
  })
  .superRefine(
    (env, ctx) => {
      if (!env.ADMIN_ALLOW_REMOTE && !isLoopbackHost(env.ADMIN_HOST)) {
        ctx.addIssue({
          code: 'custom',
          path: ['ADMIN_HOST'],
          message: `${env.ADMIN_HOST} is not a loopback address; set ADMIN_ALLOW_REMOTE=on to expose the admin API`,
        });
      }
      // Node refuses a header timeout above a (non-zero) request timeout.
      if (env.REQUEST_TIMEOUT > 0 && env.HEADERS_TIMEOUT > env.REQUEST_TIMEOUT) {
        ctx.addIssue({
          code: 'custom',
          path: ['HEADERS_TIMEOUT'],
          message: `must not exceed REQUEST_TIMEOUT (${env.REQUEST_TIMEOUT} ms)`,
        });
      }
      refineTlsEnv(env, ctx);
      refineHttpsEnv(env, ctx);
      // Cross-field checks run even when other variables are bad (zod skips them
      // by default), so every problem is listed at once.
    },
    { when: (payload) => typeof payload.value === 'object' && payload.value !== null },
  );

/**
 * PROXY_WORKERS=auto: the cores this process may run on (its CPU affinity,
 * os.availableParallelism()), within the 1..64 workers allowed. A container's
 * CPU quota (`--cpus`) is not an affinity: set a number there.
 */
export function autoWorkers(): number {
  return Math.min(64, Math.max(1, availableParallelism()));
}

export type ProxyConfig = z.output<typeof proxyEnvSchema>;

/** Whether the configuration sets a certificate source, so the TLS listener runs. */
export function tlsEnabled(config: ProxyConfig): boolean {
  return certificateSources(config).length > 0;
}

/** Reads and validates the proxy's configuration; throws ConfigError listing every problem. */
export function loadProxyConfig(env: NodeJS.ProcessEnv = process.env): ProxyConfig {
  return parseConfig(proxyEnvSchema, withoutEmpty(env));
}

/** The names `togather proxy --help` lists, straight from the schema so the list cannot go stale. */
export const PROXY_VARIABLES: readonly string[] = Object.keys(proxyEnvSchema.shape);
