import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import type { Logger } from 'pino';
import { redactUrl } from '../common/logger.js';
import type { DatabaseSettings } from './config.js';
import { isConnectionError } from './connection-errors.js';
import { lockDataDir } from './data-dir-lock.js';

export interface QueryResult<R> {
  rows: R[];
  rowCount: number;
}

/** What repositories and checks need: parameterised queries. */
export interface Queryable {
  query<R = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
  ): Promise<QueryResult<R>>;
  /** Runs a script of several statements without parameters (migration files). */
  exec(sql: string): Promise<void>;
}

/** One connection: session state such as advisory locks lives as long as it does. */
export interface Session extends Queryable {
  /** BEGIN … COMMIT around fn; ROLLBACK when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
}

export interface PoolStats {
  total: number;
  idle: number;
  waiting: number;
  max: number;
}

export type DatabaseKind = 'postgres' | 'pglite';

export interface Database extends Session {
  readonly kind: DatabaseKind;
  /** Where the data is, safe to log: the URL without its password, or the data directory. */
  readonly target: string;
  /** Runs fn on one dedicated connection, returned to the pool afterwards. */
  withSession<T>(fn: (session: Session) => Promise<T>): Promise<T>;
  poolStats(): PoolStats;
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  logger: Logger;
  /** Shown in pg_stat_activity, e.g. togather-blue. */
  applicationName?: string;
  /** How long to wait for a PostgreSQL connection before failing (default 5 s). */
  connectTimeoutMs?: number;
}

/** PostgreSQL through a pg pool when settings.url is set, else embedded PGlite in settings.dataDir. */
export async function openDatabase(
  settings: DatabaseSettings,
  options: OpenDatabaseOptions,
): Promise<Database> {
  if (settings.url) return openPostgres(settings.url, settings.poolMax, options);
  return openPglite(settings.dataDir, options.logger);
}

/**
 * Creates the pool without connecting: the app starts (and reports the
 * database as failing in /health) even while PostgreSQL is down.
 */
export function openPostgres(url: string, poolMax: number, options: OpenDatabaseOptions): Database {
  const pool = new pg.Pool({
    connectionString: url,
    max: poolMax,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    idleTimeoutMillis: 30_000,
    application_name: options.applicationName ?? 'togather',
  });
  // An idle client losing its connection emits here; unhandled, it would crash the process.
  pool.on('error', (error) =>
    options.logger.warn({ err: { message: error.message } }, 'idle database connection failed'),
  );
  const onClient = (client: pg.PoolClient | pg.Pool): Queryable => ({
    async query<R>(sql: string, params: readonly unknown[] = []) {
      const result = await client.query(sql, params as unknown[]);
      return { rows: result.rows as R[], rowCount: result.rowCount ?? 0 };
    },
    async exec(sql: string) {
      await client.query(sql);
    },
  });
  const sessionOf = (client: pg.PoolClient): Session => ({
    ...onClient(client),
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      await client.query('BEGIN');
      try {
        const result = await fn(onClient(client));
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      }
    },
  });
  const withSession = async <T>(fn: (session: Session) => Promise<T>): Promise<T> => {
    const client = await pool.connect();
    let broken: Error | undefined;
    try {
      return await fn(sessionOf(client));
    } catch (error) {
      // A connection that failed mid-use is discarded rather than reused.
      if (isConnectionError(error)) broken = error as Error;
      throw error;
    } finally {
      client.release(broken);
    }
  };
  return {
    kind: 'postgres',
    target: redactUrl(url),
    ...onClient(pool),
    withSession,
    transaction: (fn) => withSession((session) => session.transaction(fn)),
    poolStats: () => ({
      total: pool.totalCount,
      idle: pool.idleCount,
      waiting: pool.waitingCount,
      max: poolMax,
    }),
    close: () => pool.end(),
  };
}

/** Embedded PostgreSQL (WASM) in one directory, for one process. */
export async function openPglite(dataDir: string, logger: Logger): Promise<Database> {
  const unlock = await lockDataDir(dataDir);
  let db: PGlite;
  try {
    db = await PGlite.create(dataDir);
  } catch (error) {
    await unlock();
    throw error;
  }
  logger.info(
    { database: 'pglite', data_dir: dataDir },
    'using embedded PGlite: single process only; set DATABASE_URL to share a database',
  );
  const onTarget = (target: { query: PGlite['query']; exec: PGlite['exec'] }): Queryable => ({
    async query<R>(sql: string, params: readonly unknown[] = []) {
      const result = await target.query<R>(sql, [...params]);
      // Like pg: the rows returned, else the rows an INSERT/UPDATE/DELETE touched.
      const rowCount = result.rows.length > 0 ? result.rows.length : (result.affectedRows ?? 0);
      return { rows: result.rows, rowCount };
    },
    async exec(sql: string) {
      await target.exec(sql);
    },
  });
  const session: Session = {
    ...onTarget(db),
    // PGlite's transaction holds its only connection, so other queries wait meanwhile.
    transaction: (fn) => db.transaction((tx) => fn(onTarget(tx))),
  };
  return {
    kind: 'pglite',
    target: dataDir,
    ...session,
    withSession: (fn) => fn(session),
    poolStats: () => ({ total: 1, idle: 1, waiting: 0, max: 1 }),
    async close() {
      try {
        await db.close();
      } finally {
        await unlock();
      }
    },
  };
}
