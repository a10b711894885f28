import { InvalidArgumentError, type Command } from 'commander';
import { createLogger } from '../common/logger.js';
import { durationArgument } from '../cli/duration-argument.js';
import { CommandFailed, UsageError } from '../cli/errors.js';
import { isSlot } from '../common/slot.js';
import { loadDatabaseCommandConfig, type DatabaseCommandConfig } from './config.js';
import { openDatabase, type Database } from './database.js';
import { DataDirBusyError } from './data-dir-lock.js';
import { errorText } from './error-text.js';
import {
  HealthTargetError,
  defaultHealthUrl,
  runHealthcheck,
  slotHealthUrl,
} from './healthcheck.js';
import { loadMigrations, migrateUp, migrationLabel, migrationStatus } from './migrate.js';
import { serve } from './serve.js';
import {
  DEFAULT_RETENTION_DAYS,
  SnapshotError,
  cleanupSnapshots,
  createSnapshot,
  listSnapshots,
  type SnapshotMeta,
} from './snapshot.js';

const duration = durationArgument;

const wholeNumber = (text: string): number => {
  if (!/^\d+$/.test(text)) throw new InvalidArgumentError('must be a whole number');
  return Number(text);
};

const positiveNumber = (text: string): number => {
  const value = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || value <= 0) {
    throw new InvalidArgumentError('must be a positive number');
  }
  return value;
};

/** Registers the server part's commands on the togather CLI. */
export function registerServerCommands(program: Command): void {
  program
    .command('serve')
    .description('run the Togather SEL app (configuration from the environment)')
    .option(
      '--migrate',
      'apply pending migrations before listening (always done on embedded PGlite, which no other process shares)',
    )
    .action(async (options: { migrate?: boolean }) => {
      await serve({ migrate: options.migrate === true });
    });

  program
    .command('healthcheck')
    .description(
      "GET the app's /health: exit 0 healthy or degraded, 1 unhealthy or unreachable, 2 unreadable answer",
    )
    .option(
      '--url <url>',
      "health URL (default: the app's /health at SERVER_HOST:SERVER_PORT, 127.0.0.1:8080; in an image container running `proxy`, the proxy's /healthz at ADMIN_PORT)",
    )
    .option('--slot <slot>', 'check a slot on its direct port on localhost (blue 8081, green 8082)')
    .option('--timeout <duration>', 'time allowed per attempt', duration, 5000)
    .option('--retries <n>', 'further attempts after a failed one', wholeNumber, 0)
    .option('--retry-delay <duration>', 'pause between attempts', duration, 2000)
    .action(
      async (options: {
        url?: string;
        slot?: string;
        timeout: number;
        retries: number;
        retryDelay: number;
      }) => {
        if (options.url && options.slot) throw new UsageError('give --url or --slot, not both');
        if (options.slot !== undefined && !isSlot(options.slot)) {
          throw new UsageError(`--slot must be blue or green, not "${options.slot}"`);
        }
        let url: string;
        try {
          url = options.slot ? slotHealthUrl(options.slot) : (options.url ?? defaultHealthUrl());
        } catch (error) {
          if (error instanceof HealthTargetError) throw new UsageError(error.message);
          throw error;
        }
        if (!URL.canParse(url) || !/^https?:/.test(url)) {
          throw new UsageError(`--url must be an http(s) URL, not "${url}"`);
        }
        const result = await runHealthcheck(
          {
            url,
            timeoutMs: options.timeout,
            retries: options.retries,
            retryDelayMs: options.retryDelay,
          },
          (attempt, n) => {
            if (attempt.code !== 0 && n <= options.retries) {
              process.stderr.write(`attempt ${n}: ${attempt.message}\n`);
            }
          },
        );
        (result.code === 0 ? process.stdout : process.stderr).write(`${result.message}\n`);
        process.exitCode = result.code;
      },
    );

  const migrate = program.command('migrate').description('apply or show SQL migrations');
  migrate
    .command('up')
    .description('apply pending migrations in order, each in a transaction, under an advisory lock')
    .action(async () => {
      await withDatabase(async (db, logger) => {
        const migrations = await loadMigrations();
        const applied = await migrateUp(db, migrations, { logger });
        for (const m of applied) process.stdout.write(`applied ${migrationLabel(m)}\n`);
        if (applied.length === 0) {
          const latest = migrations[migrations.length - 1];
          process.stdout.write(
            `schema up to date${latest ? ` (${migrationLabel(latest)})` : ''}\n`,
          );
        }
      });
    });
  migrate
    .command('status')
    .description('show each migration: applied, pending, dirty or newer than this build')
    .option('--json', 'print one JSON object')
    .action(async (options: { json?: boolean }) => {
      await withDatabase(async (db) => {
        const status = await migrationStatus(db, await loadMigrations());
        const rows = [
          ...status.applied.map((row) => ({
            migration: migrationLabel(row),
            state: row.dirty
              ? 'dirty'
              : status.newer.includes(row)
                ? 'applied (newer than this build)'
                : status.modified.some((m) => m.version === row.version)
                  ? 'applied (file changed since)'
                  : 'applied',
            applied_at: row.applied_at?.toISOString() ?? null,
          })),
          ...status.pending.map((m) => ({
            migration: migrationLabel(m),
            state: 'pending',
            applied_at: null,
          })),
        ].sort((a, b) => a.migration.localeCompare(b.migration));
        if (options.json) {
          const summary = {
            up_to_date: status.pending.length === 0 && status.dirty.length === 0,
            migrations: rows,
          };
          process.stdout.write(JSON.stringify(summary) + '\n');
          return;
        }
        for (const row of rows) {
          process.stdout.write(
            `${row.migration.padEnd(40)} ${row.state}${row.applied_at ? `  ${row.applied_at}` : ''}\n`,
          );
        }
        if (rows.length === 0) process.stdout.write('no migrations\n');
      });
    });

  const snapshot = program
    .command('snapshot')
    .description('pg_dump snapshots of the database in SNAPSHOT_DIR, with retention');
  snapshot
    .command('create')
    .description('dump the database (DATABASE_URL) with pg_dump into a gzip file')
    .option('--reason <reason>', 'why, recorded in the metadata', 'manual')
    .option(
      '--retention-days <days>',
      'days before cleanup may delete it',
      positiveNumber,
      DEFAULT_RETENTION_DAYS,
    )
    .option('--json', 'print the metadata as JSON')
    .action(async (options: { reason: string; retentionDays: number; json?: boolean }) => {
      const config = loadDatabaseCommandConfig();
      if (!config.database.url) {
        throw new CommandFailed(
          'snapshot create needs DATABASE_URL (PostgreSQL); embedded PGlite data is the DATA_DIR directory itself',
        );
      }
      const meta = await createSnapshot({
        databaseUrl: config.database.url,
        dir: config.snapshotDir,
        reason: options.reason,
        retentionDays: options.retentionDays,
      }).catch(rethrowSnapshotError);
      process.stdout.write(
        options.json
          ? JSON.stringify({ ...meta, dir: config.snapshotDir }) + '\n'
          : `created ${config.snapshotDir}/${meta.file} (${meta.size} bytes, expires ${meta.expires_at})\n`,
      );
    });
  snapshot
    .command('list')
    .description('list the snapshots in SNAPSHOT_DIR, oldest first')
    .option('--json', 'print a JSON array')
    .action(async (options: { json?: boolean }) => {
      const config = loadDatabaseCommandConfig();
      const snapshots = await listSnapshots(config.snapshotDir);
      if (options.json) {
        process.stdout.write(JSON.stringify(snapshots) + '\n');
        return;
      }
      if (snapshots.length === 0) {
        process.stdout.write(`no snapshots in ${config.snapshotDir}\n`);
        return;
      }
      for (const s of snapshots) process.stdout.write(snapshotLine(s) + '\n');
    });
  snapshot
    .command('cleanup')
    .description('delete snapshots past their retention')
    .action(async () => {
      const config = loadDatabaseCommandConfig();
      const { removed, kept } = await cleanupSnapshots(config.snapshotDir);
      for (const s of removed) process.stdout.write(`removed ${s.file}\n`);
      process.stdout.write(`${removed.length} removed, ${kept.length} kept\n`);
    });
}

function snapshotLine(s: SnapshotMeta): string {
  return `${s.file}  ${s.size} bytes  created ${s.created_at}  expires ${s.expires_at}  ${s.database}  ${s.reason}`;
}

function rethrowSnapshotError(error: unknown): never {
  if (error instanceof SnapshotError) throw new CommandFailed(error.message);
  throw error;
}

/** Opens the configured database for a short command; log lines go to stderr. */
async function withDatabase(
  fn: (db: Database, logger: ReturnType<typeof createLogger>) => Promise<void>,
): Promise<void> {
  const config: DatabaseCommandConfig = loadDatabaseCommandConfig();
  const logger = createLogger({
    level: config.log.level,
    format: config.log.format,
    name: 'togather-migrate',
    destination: process.stderr,
  });
  let db: Database;
  try {
    db = await openDatabase(config.database, {
      logger,
      applicationName: 'togather-migrate',
      connectTimeoutMs: 10_000,
    });
  } catch (error) {
    if (error instanceof DataDirBusyError) throw new CommandFailed(error.message);
    throw error;
  }
  try {
    await fn(db, logger);
  } catch (error) {
    if (error instanceof CommandFailed) throw error;
    throw new CommandFailed(`${db.kind} ${db.target}: ${errorText(error)}`);
  } finally {
    await db.close().catch(() => undefined);
  }
}
