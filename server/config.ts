import { z } from 'zod';
import { parseConfig, withoutEmpty } from '../common/config.js';
import { durationSchema } from '../common/duration.js';
import { LOG_LEVELS, type LogFormat } from '../common/logger.js';
import { generateSecret } from '../common/secrets.js';
import { SLOTS, type Slot } from '../common/slot.js';
import { parseCorsOrigins, type CorsSettings } from './cors.js';

export const ENVIRONMENTS = ['development', 'test', 'staging', 'production'] as const;
export type Environment = (typeof ENVIRONMENTS)[number];

/** Environments where missing secrets are generated for the run instead of refused. */
const GENERATES_SECRETS: ReadonlySet<Environment> = new Set(['development', 'test']);

/** Values copied from examples that must never guard a real deployment. */
const PLACEHOLDER = /change[-_ ]?me|replace[-_ ]?me|placeholder|example|your[-_]|^(.)\1+$/i;

const port = (fallback: number) => z.coerce.number().int().min(0).max(65_535).default(fallback);

const postgresUrl = z
  .string()
  .refine(
    (v) => /^postgres(ql)?:\/\/[^/]/.test(v) && URL.canParse(v),
    'must be a postgres:// or postgresql:// URL',
  );

/** What every command that touches the database reads (serve, migrate, snapshot). */
const databaseEnvShape = {
  DATABASE_URL: postgresUrl.optional(),
  DATA_DIR: z.string().min(1).default('./.togather/data'),
  DATABASE_POOL_MAX: z.coerce.number().int().min(1).max(1000).default(10),
  SNAPSHOT_DIR: z.string().min(1).default('./.togather/snapshots'),
  LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  LOG_FORMAT: z.enum(['json', 'pretty']).default('json'),
};

/**
 * TRUST_PROXY: `off` (default), `on` (trust every hop) or a comma-separated
 * list of addresses/CIDRs (e.g. the edge proxy's network). Only then are
 * X-Forwarded-For and -Proto believed, for client addresses (login rate
 * limit, logs) and for the scheme/host of JSON-LD @id values.
 */
const trustProxy = z
  .string()
  .default('off')
  .transform((v): boolean | string[] => {
    const lower = v.trim().toLowerCase();
    if (['off', 'false', '0', 'no'].includes(lower)) return false;
    if (['on', 'true', '1', 'yes'].includes(lower)) return true;
    return v
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
  });

/** CORS_ORIGINS: exact origins and/or `*` (any origin, public reads only). */
const corsOrigins = z
  .string()
  .default('*')
  .transform((value, ctx): CorsSettings => {
    const parsed = parseCorsOrigins(value);
    if ('problems' in parsed) {
      for (const message of parsed.problems) ctx.addIssue({ code: 'custom', message });
      return z.NEVER;
    }
    return parsed;
  });

const serverEnvSchema = z
  .object({
    ...databaseEnvShape,
    SERVER_HOST: z.string().min(1).default('0.0.0.0'),
    SERVER_PORT: port(8080),
    /** The app's /metrics, on an internal listener of its own (0: any free port). */
    METRICS_PORT: port(9464),
    /** Where that listener binds; unset = SERVER_HOST. */
    METRICS_HOST: z.string().min(1).optional(),
    SLOT: z.enum(SLOTS).optional(),
    DEPLOYMENT_SLOT: z.enum(SLOTS).optional(),
    ENVIRONMENT: z.enum(ENVIRONMENTS).default('production'),
    JWT_SECRET: z.string().min(64, 'must be at least 64 characters').optional(),
    ADMIN_API_KEY: z.string().min(32, 'must be at least 32 characters').optional(),
    ADMIN_USERNAME: z.string().min(1).max(200).default('admin'),
    ADMIN_PASSWORD: z.string().min(12, 'must be at least 12 characters').optional(),
    /** Lifetime of the admin JWTs issued by POST /api/v1/admin/login. */
    JWT_TTL: durationSchema('1h'),
    GRACEFUL_SHUTDOWN_TIMEOUT_SECONDS: z.coerce.number().min(0).max(3600).default(30),
    /**
     * Idle keep-alive sockets are kept this long. It must outlast the idle
     * time of the edge proxy's upstream agent, so the proxy, not the app,
     * closes an idle connection and never sends on one the app just closed.
     */
    KEEP_ALIVE_TIMEOUT: durationSchema('75s'),
    TRUST_PROXY: trustProxy,
    /** Base of JSON-LD @id values (https://events.example.org); unset = from each request. */
    PUBLIC_URL: z
      .string()
      .refine((v) => /^https?:\/\/[^/]+/.test(v) && URL.canParse(v), 'must be an http(s) URL')
      .transform((v) => v.replace(/\/+$/, ''))
      .optional(),
    CORS_ORIGINS: corsOrigins,
  })
  .superRefine((env, ctx) => {
    if (env.METRICS_PORT !== 0 && env.METRICS_PORT === env.SERVER_PORT) {
      ctx.addIssue({
        code: 'custom',
        path: ['METRICS_PORT'],
        message: `is SERVER_PORT (${env.SERVER_PORT}) too; the metrics listener needs a port of its own`,
      });
    }
    if (env.SLOT && env.DEPLOYMENT_SLOT && env.SLOT !== env.DEPLOYMENT_SLOT) {
      ctx.addIssue({
        code: 'custom',
        path: ['DEPLOYMENT_SLOT'],
        message: `is ${env.DEPLOYMENT_SLOT} but SLOT is ${env.SLOT}; set one of them`,
      });
    }
    if (GENERATES_SECRETS.has(env.ENVIRONMENT)) return;
    const secrets = [
      ['JWT_SECRET', env.JWT_SECRET, 'at least 64 characters'],
      ['ADMIN_API_KEY', env.ADMIN_API_KEY, 'at least 32 characters'],
      ['ADMIN_PASSWORD', env.ADMIN_PASSWORD, 'at least 12 characters'],
    ] as const;
    for (const [name, value, rule] of secrets) {
      if (value === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: [name],
          message: `is required when ENVIRONMENT=${env.ENVIRONMENT} (${rule}; only development and test generate one)`,
        });
      } else if (PLACEHOLDER.test(value)) {
        ctx.addIssue({
          code: 'custom',
          path: [name],
          message: `looks like a placeholder; set a real secret when ENVIRONMENT=${env.ENVIRONMENT}`,
        });
      }
    }
  });

export interface DatabaseSettings {
  /** PostgreSQL; undefined = embedded PGlite in dataDir (one process only). */
  url: string | undefined;
  dataDir: string;
  poolMax: number;
}

export interface AuthSettings {
  jwtSecret: string;
  adminApiKey: string;
  adminUsername: string;
  adminPassword: string;
  jwtTtlMs: number;
}

export interface LogSettings {
  level: (typeof LOG_LEVELS)[number];
  format: LogFormat;
}

export interface DatabaseCommandConfig {
  database: DatabaseSettings;
  snapshotDir: string;
  log: LogSettings;
}

export interface MetricsListenerSettings {
  host: string;
  /** 0: any free port. */
  port: number;
}

export interface ServerConfig extends DatabaseCommandConfig {
  host: string;
  port: number;
  /** The internal /metrics listener (METRICS_HOST, METRICS_PORT). */
  metrics: MetricsListenerSettings;
  slot: Slot | null;
  environment: Environment;
  auth: AuthSettings;
  shutdownTimeoutMs: number;
  keepAliveTimeoutMs: number;
  trustProxy: boolean | string[];
  publicUrl: string | undefined;
  cors: CorsSettings;
  /** Secrets generated for this run because the environment allows it. */
  generatedSecrets: Array<'JWT_SECRET' | 'ADMIN_API_KEY' | 'ADMIN_PASSWORD'>;
}

/** Reads and validates `serve`'s configuration; throws ConfigError listing every problem. */
export function loadServerConfig(env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const raw = parseConfig(serverEnvSchema, withoutEmpty(env));
  const generated: ServerConfig['generatedSecrets'] = [];
  const orGenerate = (
    name: ServerConfig['generatedSecrets'][number],
    value: string | undefined,
    bytes: number,
  ): string => {
    if (value !== undefined) return value;
    generated.push(name);
    return generateSecret(bytes);
  };
  return {
    host: raw.SERVER_HOST,
    port: raw.SERVER_PORT,
    metrics: { host: raw.METRICS_HOST ?? raw.SERVER_HOST, port: raw.METRICS_PORT },
    slot: raw.SLOT ?? raw.DEPLOYMENT_SLOT ?? null,
    environment: raw.ENVIRONMENT,
    database: databaseSettings(raw),
    snapshotDir: raw.SNAPSHOT_DIR,
    log: { level: raw.LOG_LEVEL, format: raw.LOG_FORMAT },
    auth: {
      // 48 random bytes = 64 base64url characters, the minimum JWT_SECRET length.
      jwtSecret: orGenerate('JWT_SECRET', raw.JWT_SECRET, 48),
      adminApiKey: orGenerate('ADMIN_API_KEY', raw.ADMIN_API_KEY, 32),
      adminUsername: raw.ADMIN_USERNAME,
      adminPassword: orGenerate('ADMIN_PASSWORD', raw.ADMIN_PASSWORD, 18),
      jwtTtlMs: raw.JWT_TTL,
    },
    shutdownTimeoutMs: Math.round(raw.GRACEFUL_SHUTDOWN_TIMEOUT_SECONDS * 1000),
    keepAliveTimeoutMs: raw.KEEP_ALIVE_TIMEOUT,
    trustProxy: raw.TRUST_PROXY,
    publicUrl: raw.PUBLIC_URL,
    cors: raw.CORS_ORIGINS,
    generatedSecrets: generated,
  };
}

const databaseEnvSchema = z.object(databaseEnvShape);

/** The configuration of `migrate` and `snapshot`: the database and where snapshots go. */
export function loadDatabaseCommandConfig(
  env: NodeJS.ProcessEnv = process.env,
): DatabaseCommandConfig {
  const raw = parseConfig(databaseEnvSchema, withoutEmpty(env));
  return {
    database: databaseSettings(raw),
    snapshotDir: raw.SNAPSHOT_DIR,
    log: { level: raw.LOG_LEVEL, format: raw.LOG_FORMAT },
  };
}

function databaseSettings(raw: z.output<typeof databaseEnvSchema>): DatabaseSettings {
  return { url: raw.DATABASE_URL, dataDir: raw.DATA_DIR, poolMax: raw.DATABASE_POOL_MAX };
}
