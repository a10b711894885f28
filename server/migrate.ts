import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { Database, Queryable } from './database.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

export interface AppliedMigration {
  version: number;
  name: string;
  checksum: string;
  dirty: boolean;
  applied_at: Date | null;
}

export interface MigrationStatus {
  /** Migrations of this build, in order. */
  known: Migration[];
  /** Rows of schema_migrations, in order. */
  applied: AppliedMigration[];
  /** Known to this build, not applied yet (the schema is behind). */
  pending: Migration[];
  /** Started and never finished. */
  dirty: AppliedMigration[];
  /** Applied, but the file of this build differs from what was applied. */
  modified: Migration[];
  /** Applied by a newer build (the schema is ahead, fine under the additive rule). */
  newer: AppliedMigration[];
}

const FILE_NAME = /^(\d{4})_([a-z0-9_]+)\.sql$/;

/**
 * The advisory lock every `migrate up` takes (two int4 keys: "togt", 1), so
 * concurrent runs wait for each other and each migration is applied once.
 */
export const MIGRATION_LOCK_KEYS = [0x746f6774, 1] as const;

/**
 * The SQL files live next to this module in the source tree; the build
 * compiles TypeScript only, so from dist/server/ they are found in server/.
 */
export function defaultMigrationsDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, 'migrations'), join(here, '..', '..', 'server', 'migrations')];
  return candidates.find((dir) => existsSync(join(dir, 'RULES.md'))) ?? candidates[0]!;
}

/** Reads NNNN_name.sql files in version order; refuses duplicates and odd names. */
export async function loadMigrations(dir = defaultMigrationsDir()): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  const migrations: Migration[] = [];
  for (const file of files) {
    const match = FILE_NAME.exec(file);
    if (!match) throw new Error(`migration file ${file} is not named NNNN_lower_snake_name.sql`);
    const version = Number(match[1]);
    if (migrations.some((m) => m.version === version)) {
      throw new Error(`two migration files have version ${match[1]}`);
    }
    const sql = await readFile(join(dir, file), 'utf8');
    migrations.push({ version, name: match[2]!, sql, checksum: checksumOf(sql) });
  }
  return migrations;
}

export function checksumOf(sql: string): string {
  return createHash('sha256').update(sql).digest('hex');
}

export function migrationLabel(m: { version: number; name: string }): string {
  return `${String(m.version).padStart(4, '0')}_${m.name}`;
}

const CREATE_TABLE = `
  CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    dirty boolean NOT NULL DEFAULT true,
    applied_at timestamptz
  )`;

/** Compares the database with the migrations of this build; never writes. */
export async function migrationStatus(
  db: Queryable,
  known: readonly Migration[],
): Promise<MigrationStatus> {
  const exists = await db.query<{ exists: boolean }>(
    `SELECT to_regclass('schema_migrations') IS NOT NULL AS exists`,
  );
  const applied = exists.rows[0]?.exists
    ? (
        await db.query<AppliedMigration>(
          'SELECT version, name, checksum, dirty, applied_at FROM schema_migrations ORDER BY version',
        )
      ).rows
    : [];
  const byVersion = new Map(applied.map((row) => [row.version, row]));
  const knownVersions = new Set(known.map((m) => m.version));
  return {
    known: [...known],
    applied,
    pending: known.filter((m) => !byVersion.has(m.version)),
    dirty: applied.filter((row) => row.dirty),
    modified: known.filter((m) => {
      const row = byVersion.get(m.version);
      return row !== undefined && !row.dirty && row.checksum !== m.checksum;
    }),
    newer: applied.filter((row) => !knownVersions.has(row.version)),
  };
}

/** True while some session holds the migration lock (a `migrate up` is running). */
export async function migrationRunning(db: Queryable): Promise<boolean> {
  const result = await db.query<{ running: boolean }>(
    `SELECT EXISTS (
       SELECT 1 FROM pg_locks
       WHERE locktype = 'advisory' AND granted
         AND classid = $1::int::oid AND objid = $2::int::oid AND objsubid = 2
     ) AS running`,
    [MIGRATION_LOCK_KEYS[0], MIGRATION_LOCK_KEYS[1]],
  );
  return result.rows[0]?.running ?? false;
}

export interface MigrateUpOptions {
  logger: Logger;
  /** How long to wait for another run's lock (default 2 minutes). */
  lockTimeoutMs?: number;
}

/**
 * Applies the pending migrations in order, each in its own transaction,
 * under the advisory lock. Returns those applied by this run.
 *
 * A row is first committed as dirty, then the migration and the clearing of
 * the flag commit together: a dirty row therefore means a run is in
 * progress or died mid-migration. Because PostgreSQL DDL is transactional,
 * nothing of a dirty migration was applied, so the next run retries it.
 */
export async function migrateUp(
  db: Database,
  known: readonly Migration[],
  options: MigrateUpOptions,
): Promise<Migration[]> {
  const { logger } = options;
  return db.withSession(async (session) => {
    await acquireLock(session, options.lockTimeoutMs ?? 120_000, logger);
    try {
      await session.exec(CREATE_TABLE);
      const status = await migrationStatus(session, known);
      for (const row of status.dirty) {
        logger.warn(
          { migration: migrationLabel(row) },
          'migration was interrupted by an earlier run; nothing of it was committed, retrying',
        );
      }
      const dirtyVersions = new Set(status.dirty.map((row) => row.version));
      const todo = known.filter((m) => status.pending.includes(m) || dirtyVersions.has(m.version));
      for (const m of status.modified) {
        logger.warn(
          { migration: migrationLabel(m) },
          'applied migration file was edited afterwards; write a new migration instead',
        );
      }
      const done: Migration[] = [];
      for (const migration of todo) {
        const label = migrationLabel(migration);
        const started = Date.now();
        await session.query(
          `INSERT INTO schema_migrations (version, name, checksum, dirty, applied_at)
           VALUES ($1, $2, $3, true, NULL)
           ON CONFLICT (version) DO UPDATE SET name = $2, checksum = $3, dirty = true, applied_at = NULL`,
          [migration.version, migration.name, migration.checksum],
        );
        try {
          await session.transaction(async (tx) => {
            await tx.exec(migration.sql);
            await tx.query(
              'UPDATE schema_migrations SET dirty = false, applied_at = now() WHERE version = $1',
              [migration.version],
            );
          });
        } catch (error) {
          // Rolled back: the schema is as before, so the marker goes too.
          await session
            .query('DELETE FROM schema_migrations WHERE version = $1 AND dirty', [
              migration.version,
            ])
            .catch(() => undefined);
          const reason = error instanceof Error ? error.message : String(error);
          throw new Error(`migration ${label} failed and was rolled back: ${reason}`);
        }
        logger.info({ migration: label, duration_ms: Date.now() - started }, 'migration applied');
        done.push(migration);
      }
      return done;
    } finally {
      await session
        .query('SELECT pg_advisory_unlock($1, $2)', [
          MIGRATION_LOCK_KEYS[0],
          MIGRATION_LOCK_KEYS[1],
        ])
        .catch(() => undefined);
    }
  });
}

async function acquireLock(session: Queryable, timeoutMs: number, logger: Logger): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let told = false;
  for (;;) {
    const result = await session.query<{ locked: boolean }>(
      'SELECT pg_try_advisory_lock($1, $2) AS locked',
      [MIGRATION_LOCK_KEYS[0], MIGRATION_LOCK_KEYS[1]],
    );
    if (result.rows[0]?.locked) return;
    if (Date.now() >= deadline) {
      throw new Error(
        `another migrate run has held the migration lock for over ${Math.round(timeoutMs / 1000)} s`,
      );
    }
    if (!told) {
      logger.info('another migrate run holds the migration lock; waiting for it');
      told = true;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
