import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll } from 'vitest';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { createLogger } from '../../common/logger.js';
import { buildApp, type AppDeps, type AppSettings } from '../../server/app.js';
import { openPglite, openPostgres, type Database } from '../../server/database.js';
import { loadMigrations, migrateUp } from '../../server/migrate.js';
import { createTestDatabase, type TestDatabase } from './postgres.js';

/** Credentials of the apps tests build: long enough to pass production rules. */
export const TEST_AUTH = {
  jwtSecret: 'test-jwt-secret-'.padEnd(64, 'j'),
  adminApiKey: 'test-admin-api-key-'.padEnd(40, 'k'),
  adminUsername: 'admin',
  adminPassword: 'correct horse battery staple',
  jwtTtlMs: 3_600_000,
} as const;

export const TEST_SETTINGS: AppSettings = {
  slot: 'blue',
  auth: { ...TEST_AUTH },
  trustProxy: false,
  publicUrl: undefined,
  keepAliveTimeoutMs: 75_000,
  cors: { anyOrigin: true, origins: [] },
};

export const ADMIN = { authorization: `Bearer ${TEST_AUTH.adminApiKey}` };

/** Log lines captured from a logger, parsed. */
export class LogCapture {
  readonly raw: string[] = [];
  readonly logger: Logger;

  constructor(level = 'debug') {
    const sink = new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        this.raw.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    });
    this.logger = createLogger({ level, destination: sink, name: 'test' });
  }

  get lines(): Array<Record<string, unknown>> {
    return this.raw.map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  text(): string {
    return this.raw.join('\n');
  }
}

/** A migrated database of either kind, for one test file. */
export interface TestBackend {
  kind: 'postgres' | 'pglite';
  db: Database;
  /** The PostgreSQL URL (postgres only). */
  url?: string;
  close(): Promise<void>;
}

export async function postgresBackend(options: { poolMax?: number } = {}): Promise<TestBackend> {
  const testDb: TestDatabase = await createTestDatabase();
  const silent = createLogger({ level: 'silent' });
  const db = openPostgres(testDb.url, options.poolMax ?? 5, { logger: silent });
  await migrateUp(db, await loadMigrations(), { logger: silent });
  return {
    kind: 'postgres',
    db,
    url: testDb.url,
    async close() {
      await db.close();
      await testDb.drop();
    },
  };
}

export async function pgliteBackend(): Promise<TestBackend> {
  const dir = await mkdtemp(join(tmpdir(), 'togather-pglite-'));
  const silent = createLogger({ level: 'silent' });
  const db = await openPglite(join(dir, 'data'), silent);
  await migrateUp(db, await loadMigrations(), { logger: silent });
  return {
    kind: 'pglite',
    db,
    async close() {
      await db.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface TestApp {
  app: FastifyInstance;
  url: string;
  logs: LogCapture;
  close(): Promise<void>;
}

/** buildApp with test defaults, listening on a free loopback port. */
export async function startTestApp(
  deps: Partial<Omit<AppDeps, 'settings'>> & {
    database: Database;
    settings?: Partial<AppSettings>;
  },
): Promise<TestApp> {
  const logs = new LogCapture();
  const app = buildApp({
    logger: logs.logger,
    registry: new Registry(),
    migrations: await loadMigrations(),
    ...deps,
    settings: { ...TEST_SETTINGS, ...deps.settings },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('no address');
  return {
    app,
    url: `http://127.0.0.1:${address.port}`,
    logs,
    close: () => app.close(),
  };
}

/** What the suite's tests run against: a migrated database and the app on it. */
export interface AppUnderTest {
  readonly backend: TestBackend;
  readonly server: TestApp;
  /** The app's base URL (`server.url`). */
  readonly url: string;
  /** The backend's database (`backend.db`). */
  readonly db: Database;
}

/**
 * The app-under-test fixture: before the suite's tests, a migrated database
 * (PostgreSQL unless `backend` opens another) and `startTestApp` on it with
 * `app`'s dependencies; after them, both closed.
 */
export function appBefore(
  options: {
    backend?: () => Promise<TestBackend>;
    app?: Partial<Omit<AppDeps, 'settings' | 'database'>> & { settings?: Partial<AppSettings> };
  } = {},
): AppUnderTest {
  let backend: TestBackend | undefined;
  let server: TestApp | undefined;
  beforeAll(async () => {
    backend = await (options.backend ?? postgresBackend)();
    server = await startTestApp({ ...options.app, database: backend.db });
  });
  afterAll(async () => {
    await server?.close();
    await backend?.close();
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('used before its beforeAll ran (or after it failed)');
    return value;
  };
  return {
    get backend() {
      return started(backend);
    },
    get server() {
      return started(server);
    },
    get url() {
      return started(server).url;
    },
    get db() {
      return started(backend).db;
    },
  };
}

/** fetch returning status, headers and the parsed JSON body (or text). */
export async function call(
  url: string,
  init: RequestInit & { json?: unknown } = {},
): Promise<{ status: number; headers: Headers; body: unknown; text: string }> {
  const { json, ...rest } = init;
  const headers = new Headers(rest.headers);
  if (json !== undefined) headers.set('content-type', 'application/json');
  const response = await fetch(url, {
    ...rest,
    headers,
    body: json !== undefined ? JSON.stringify(json) : rest.body,
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: the text is the body
  }
  return { status: response.status, headers: response.headers, body, text };
}

/** The exact RFC 9457 body the app answers with. */
export function problem(
  status: number,
  title: string,
  detail: string,
  instance: string,
  requestId: string | null,
  extra: Record<string, unknown> = {},
) {
  return { type: 'about:blank', title, status, detail, instance, request_id: requestId, ...extra };
}

/** The exact 405 body: `method` is not allowed at `instance`, `allow` lists what is. */
export function methodNotAllowed(
  method: string,
  allow: string,
  instance: string,
  requestId: string | null,
) {
  return problem(
    405,
    'Method Not Allowed',
    `${method} is not allowed here; allowed: ${allow}`,
    instance,
    requestId,
  );
}
