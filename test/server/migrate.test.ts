import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { openPostgres, type Database } from '../../server/database.js';
import {
  checksumOf,
  loadMigrations,
  migrateUp,
  migrationRunning,
  migrationStatus,
  type Migration,
} from '../../server/migrate.js';
import { closedPort } from '../../harness/ports.js';
import { createTestDatabase, type TestDatabase } from '../support/postgres.js';
import { runCli } from '../support/processes.js';

const logger = createLogger({ level: 'silent' });
const cleanups: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A fresh database for one test, and pools on it (closed and dropped afterwards). */
async function freshDatabase(): Promise<{ testDb: TestDatabase; open: () => Database }> {
  const testDb = await createTestDatabase();
  const pools: Database[] = [];
  cleanups.push(async () => {
    for (const pool of pools) await pool.close();
    await testDb.drop();
  });
  return {
    testDb,
    open: () => {
      const db = openPostgres(testDb.url, 3, { logger });
      pools.push(db);
      return db;
    },
  };
}

function migration(version: number, name: string, sql: string): Migration {
  return { version, name, sql, checksum: checksumOf(sql) };
}

async function versions(db: Database) {
  const result = await db.query<{ version: number; dirty: boolean }>(
    'SELECT version, dirty FROM schema_migrations ORDER BY version',
  );
  return result.rows;
}

async function tableExists(db: Database, name: string): Promise<boolean> {
  const result = await db.query<{ exists: boolean }>(
    'SELECT to_regclass($1) IS NOT NULL AS exists',
    [name],
  );
  return result.rows[0]!.exists;
}

describe('loadMigrations', () => {
  it('reads the shipped files in version order', async () => {
    const migrations = await loadMigrations();
    expect(migrations.map((m) => `${m.version}:${m.name}`)).toEqual([
      '1:create_events',
      '2:create_places_and_organizations',
    ]);
    expect(migrations[0]!.sql).toContain('CREATE TABLE events');
    expect(migrations[1]!.sql).toContain('CREATE TABLE places');
    expect(migrations[0]!.checksum).toMatch(/^[0-9a-f]{64}$/);
  });

  it('refuses badly named files and duplicate versions', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'togather-migrations-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, '1_short.sql'), 'SELECT 1');
    await expect(loadMigrations(dir)).rejects.toThrow(
      'migration file 1_short.sql is not named NNNN_lower_snake_name.sql',
    );
    await rm(join(dir, '1_short.sql'));
    await writeFile(join(dir, '0001_a.sql'), 'SELECT 1');
    await writeFile(join(dir, '0001_b.sql'), 'SELECT 1');
    await expect(loadMigrations(dir)).rejects.toThrow('two migration files have version 0001');
  });
});

describe('migrateUp', () => {
  it('applies pending migrations in order, records them, and then has nothing to do', async () => {
    const { open } = await freshDatabase();
    const db = open();
    const migrations = await loadMigrations();
    const before = await migrationStatus(db, migrations);
    expect(before.applied).toEqual([]);
    expect(before.pending.map((m) => m.version)).toEqual([1, 2]);

    const applied = await migrateUp(db, migrations, { logger });
    expect(applied.map((m) => m.version)).toEqual([1, 2]);
    expect(await tableExists(db, 'events')).toBe(true);
    expect(await tableExists(db, 'places')).toBe(true);
    expect(await tableExists(db, 'organizations')).toBe(true);
    const after = await migrationStatus(db, migrations);
    expect(after.pending).toEqual([]);
    expect(after.dirty).toEqual([]);
    expect(after.applied).toEqual([
      {
        version: 1,
        name: 'create_events',
        checksum: migrations[0]!.checksum,
        dirty: false,
        applied_at: expect.any(Date),
      },
      {
        version: 2,
        name: 'create_places_and_organizations',
        checksum: migrations[1]!.checksum,
        dirty: false,
        applied_at: expect.any(Date),
      },
    ]);
    expect(await migrateUp(db, migrations, { logger })).toEqual([]);
  });

  it('two concurrent runs apply each migration once', async () => {
    const { open } = await freshDatabase();
    const migrations = [
      // Slow enough that the second run has to wait for the lock.
      migration(1, 'first', 'CREATE TABLE first (id int); SELECT pg_sleep(0.5);'),
      migration(2, 'second', 'CREATE TABLE second (id int);'),
      migration(3, 'third', 'ALTER TABLE first ADD COLUMN note text;'),
    ];
    const [a, b] = await Promise.all([
      migrateUp(open(), migrations, { logger }),
      migrateUp(open(), migrations, { logger }),
    ]);
    const appliedVersions = [...a, ...b].map((m) => m.version).sort();
    expect(appliedVersions).toEqual([1, 2, 3]);
    expect(a.length === 0 || b.length === 0).toBe(true);
    expect(await versions(open())).toEqual([
      { version: 1, dirty: false },
      { version: 2, dirty: false },
      { version: 3, dirty: false },
    ]);
  });

  it('rolls a failing migration back entirely and leaves no dirty row', async () => {
    const { open } = await freshDatabase();
    const db = open();
    const migrations = [
      migration(1, 'good', 'CREATE TABLE good (id int);'),
      migration(2, 'bad', 'CREATE TABLE partial (id int); SELECT no_such_function();'),
    ];
    await expect(migrateUp(db, migrations, { logger })).rejects.toThrow(
      /^migration 0002_bad failed and was rolled back: function no_such_function\(\) does not exist$/,
    );
    expect(await versions(db)).toEqual([{ version: 1, dirty: false }]);
    expect(await tableExists(db, 'good')).toBe(true);
    expect(await tableExists(db, 'partial')).toBe(false);
    // The lock was released: a fixed migration applies.
    const fixed = [migrations[0]!, migration(2, 'bad', 'CREATE TABLE partial (id int);')];
    expect((await migrateUp(db, fixed, { logger })).map((m) => m.version)).toEqual([2]);
  });

  it('retries a migration left dirty by a run that died', async () => {
    const { open } = await freshDatabase();
    const db = open();
    const migrations = [migration(1, 'one', 'CREATE TABLE one (id int);')];
    await db.exec(`CREATE TABLE schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
      dirty boolean NOT NULL DEFAULT true, applied_at timestamptz)`);
    await db.query(
      `INSERT INTO schema_migrations (version, name, checksum, dirty) VALUES (1, 'one', 'x', true)`,
    );
    expect((await migrationStatus(db, migrations)).dirty.map((m) => m.version)).toEqual([1]);
    expect((await migrateUp(db, migrations, { logger })).map((m) => m.version)).toEqual([1]);
    expect(await versions(db)).toEqual([{ version: 1, dirty: false }]);
  });

  it('tells when a run holds the lock', async () => {
    const { open } = await freshDatabase();
    const db = open();
    expect(await migrationRunning(db)).toBe(false);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const holder = db.withSession(async (session) => {
      await session.query('SELECT pg_advisory_lock($1, $2)', [0x746f6774, 1]);
      await held;
      await session.query('SELECT pg_advisory_unlock($1, $2)', [0x746f6774, 1]);
    });
    try {
      await new Promise((r) => setTimeout(r, 100));
      expect(await migrationRunning(db)).toBe(true);
      await expect(
        migrateUp(open(), [migration(1, 'x', 'SELECT 1')], { logger, lockTimeoutMs: 300 }),
      ).rejects.toThrow('another migrate run has held the migration lock for over 0 s');
    } finally {
      release();
      await holder;
    }
    expect(await migrationRunning(db)).toBe(false);
  });
});

describe('togather migrate', () => {
  it('two concurrent `migrate up` processes apply each migration once', async () => {
    const { testDb, open } = await freshDatabase();
    const env = { DATABASE_URL: testDb.url };
    const [a, b] = await Promise.all([
      runCli(['migrate', 'up'], env),
      runCli(['migrate', 'up'], env),
    ]);
    expect([a.code, b.code]).toEqual([0, 0]);
    const outputs = [a.stdout, b.stdout];
    expect(
      outputs.filter(
        (o) => o === 'applied 0001_create_events\napplied 0002_create_places_and_organizations\n',
      ),
    ).toHaveLength(1);
    expect(
      outputs.filter((o) => o === 'schema up to date (0002_create_places_and_organizations)\n'),
    ).toHaveLength(1);
    expect(await versions(open())).toEqual([
      { version: 1, dirty: false },
      { version: 2, dirty: false },
    ]);

    const status = await runCli(['migrate', 'status'], env);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^0001_create_events\s+applied {2}\d{4}-\d\d-\d\dT/);
    const json = await runCli(['migrate', 'status', '--json'], env);
    expect(JSON.parse(json.stdout)).toEqual({
      up_to_date: true,
      migrations: [
        { migration: '0001_create_events', state: 'applied', applied_at: expect.any(String) },
        {
          migration: '0002_create_places_and_organizations',
          state: 'applied',
          applied_at: expect.any(String),
        },
      ],
    });
  });

  it('with LOG_FORMAT=pretty the log lines go to stderr; stdout stays the answer', async () => {
    const { testDb } = await freshDatabase();
    const result = await runCli(['migrate', 'up'], {
      DATABASE_URL: testDb.url,
      LOG_FORMAT: 'pretty',
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      'applied 0001_create_events\napplied 0002_create_places_and_organizations\n',
    );
    expect(result.stderr).toMatch(
      /^\[[\d:.]+\] INFO \(togather-migrate\/\d+\): migration applied\n/,
    );
    expect(result.stderr).toContain('migration: "0001_create_events"');
  });

  it('migrate status shows pending migrations of a fresh database', async () => {
    const { testDb } = await freshDatabase();
    const result = await runCli(['migrate', 'status', '--json'], { DATABASE_URL: testDb.url });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({
      up_to_date: false,
      migrations: [
        { migration: '0001_create_events', state: 'pending', applied_at: null },
        { migration: '0002_create_places_and_organizations', state: 'pending', applied_at: null },
      ],
    });
  });

  it('fails with exit 1 and a clear line when the database is unreachable', async () => {
    const port = await closedPort();
    const result = await runCli(['migrate', 'up'], {
      DATABASE_URL: `postgres://togather:hunter2-secret@127.0.0.1:${port}/x`,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `togather: postgres postgres://togather:***@127.0.0.1:${port}/x: connect ECONNREFUSED 127.0.0.1:${port}\n`,
    );
    // pg also takes the password as a query parameter: hidden the same way.
    const query = await runCli(['migrate', 'up'], {
      DATABASE_URL: `postgres://togather@127.0.0.1:${port}/x?sslmode=disable&password=hunter2-secret`,
    });
    expect(query.code).toBe(1);
    expect(query.stderr).toBe(
      `togather: postgres postgres://togather@127.0.0.1:${port}/x?sslmode=disable&password=***: connect ECONNREFUSED 127.0.0.1:${port}\n`,
    );
  });

  // PGlite (Postgres in WebAssembly) takes seconds to start, many on a busy 2-core machine.
  const PGLITE_RUN = { timeoutMs: 75_000 };

  it('migrates an embedded PGlite DATA_DIR, and refuses one another process holds', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'togather-migrate-pglite-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const dataDir = join(dir, 'data');
    const first = await runCli(['migrate', 'up'], { DATA_DIR: dataDir }, PGLITE_RUN);
    expect(first.stderr).toContain('using embedded PGlite');
    expect(first.stdout).toBe(
      'applied 0001_create_events\napplied 0002_create_places_and_organizations\n',
    );
    expect(first.code).toBe(0);

    // This test process plays the other holder: its pid is alive.
    await writeFile(join(dataDir, 'togather.lock'), `${process.pid}\n`);
    const busy = await runCli(['migrate', 'status'], { DATA_DIR: dataDir }, PGLITE_RUN);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toBe(
      `togather: DATA_DIR ${dataDir} is in use by process ${process.pid}: embedded PGlite serves one process only (stop it, or set DATABASE_URL to share a PostgreSQL database)\n`,
    );

    // A lock left by a process that is gone is taken over.
    await writeFile(join(dataDir, 'togather.lock'), '999999999\n');
    const stale = await runCli(['migrate', 'status'], { DATA_DIR: dataDir }, PGLITE_RUN);
    expect(stale.code).toBe(0);
    expect(stale.stdout).toMatch(/^0001_create_events\s+applied/);
  }, 240_000);
});
