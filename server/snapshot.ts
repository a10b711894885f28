import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';

/** What `.meta.json` next to each dump records. */
export interface SnapshotMeta {
  /** File name of the dump in SNAPSHOT_DIR. */
  file: string;
  reason: string;
  created_at: string;
  expires_at: string;
  /** host:port/name of the database dumped (no user, no password). */
  database: string;
  /** Bytes of the gzip file. */
  size: number;
}

export class SnapshotError extends Error {
  override name = 'SnapshotError';
}

export const DEFAULT_RETENTION_DAYS = 7;
const META_SUFFIX = '.meta.json';
const DAY_MS = 86_400_000;

export interface CreateSnapshotOptions {
  databaseUrl: string;
  dir: string;
  reason: string;
  retentionDays: number;
  now?: () => Date;
  /** The pg_dump program (default: pg_dump on the PATH). */
  pgDump?: string;
}

/** host:port/name, what the metadata and messages show of a connection URL. */
export function databaseLabel(url: string): string {
  const parsed = new URL(url);
  const name = decodeURIComponent(parsed.pathname.replace(/^\//, '')) || parsed.username;
  return `${parsed.hostname}:${parsed.port || '5432'}/${name}`;
}

/**
 * pg_dump (plain SQL) piped through gzip into SNAPSHOT_DIR, written under a
 * temporary name and renamed when complete, then its .meta.json. The
 * password (of the user part or a `?password=` parameter) goes to pg_dump
 * through PGPASSWORD, never on its command line, which any user can list.
 */
export async function createSnapshot(options: CreateSnapshotOptions): Promise<SnapshotMeta> {
  const now = options.now ?? (() => new Date());
  const created = now();
  const database = databaseLabel(options.databaseUrl);
  const url = new URL(options.databaseUrl);
  const password = decodeURIComponent(url.password) || url.searchParams.get('password') || '';
  url.password = '';
  url.searchParams.delete('password');
  const dbName = (database.split('/')[1] ?? 'db').replace(/[^A-Za-z0-9_-]/g, '_');
  const stamp = created
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  const file = `togather-${dbName}-${stamp}-${randomBytes(3).toString('hex')}.sql.gz`;
  await mkdir(options.dir, { recursive: true });
  const path = join(options.dir, file);
  const partial = `${path}.partial`;

  const child = spawn(
    options.pgDump ?? 'pg_dump',
    ['--no-owner', '--no-privileges', '--format=plain', `--dbname=${url.toString()}`],
    {
      env: {
        ...process.env,
        ...(password ? { PGPASSWORD: password } : {}),
        PGCONNECT_TIMEOUT: process.env.PGCONNECT_TIMEOUT ?? '10',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    if (stderr.length < 8192) stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });

  try {
    const [code] = await Promise.all([
      exited,
      pipeline(child.stdout, createGzip(), createWriteStream(partial)),
    ]);
    if (code !== 0) throw pgDumpFailure(code, stderr, database);
    await rename(partial, path);
  } catch (error) {
    await unlink(partial).catch(() => undefined);
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !stderr) {
      throw new SnapshotError(
        `${options.pgDump ?? 'pg_dump'} not found: install the PostgreSQL client tools (e.g. apt-get install postgresql-client)`,
      );
    }
    throw error;
  }

  const meta: SnapshotMeta = {
    file,
    reason: options.reason,
    created_at: created.toISOString(),
    expires_at: new Date(created.getTime() + options.retentionDays * DAY_MS).toISOString(),
    database,
    size: (await stat(path)).size,
  };
  await writeFile(`${path}${META_SUFFIX}`, JSON.stringify(meta, null, 2) + '\n');
  return meta;
}

function pgDumpFailure(code: number | null, stderr: string, database: string): SnapshotError {
  const firstLine = stderr.split('\n').find((line) => line.trim().length > 0) ?? '';
  const message = firstLine.replace(/^pg_dump:\s*(error:\s*)?/, '').trim();
  if (
    /connection to server|could not connect|Connection refused|could not translate host|timeout expired/i.test(
      stderr,
    )
  ) {
    return new SnapshotError(`database ${database} is unreachable: ${message}`);
  }
  return new SnapshotError(`pg_dump failed (exit ${code ?? 'signal'}): ${message || 'no message'}`);
}

/** Snapshots with readable metadata, oldest first. A missing directory has none. */
export async function listSnapshots(dir: string): Promise<SnapshotMeta[]> {
  return (await readSnapshots(dir)).map((entry) => entry.meta);
}

async function readSnapshots(
  dir: string,
): Promise<Array<{ meta: SnapshotMeta; metaFile: string }>> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const entries: Array<{ meta: SnapshotMeta; metaFile: string }> = [];
  for (const metaFile of names.filter((n) => n.endsWith(META_SUFFIX))) {
    try {
      const meta = JSON.parse(await readFile(join(dir, metaFile), 'utf8')) as SnapshotMeta;
      if (typeof meta.file === 'string' && typeof meta.expires_at === 'string') {
        entries.push({ meta, metaFile });
      }
    } catch {
      // An unreadable metadata file is not a snapshot this tool manages.
    }
  }
  return entries.sort((a, b) => a.meta.created_at.localeCompare(b.meta.created_at));
}

/** Deletes snapshots past their expires_at (the dump and its metadata). */
export async function cleanupSnapshots(
  dir: string,
  now: Date = new Date(),
): Promise<{ removed: SnapshotMeta[]; kept: SnapshotMeta[] }> {
  const removed: SnapshotMeta[] = [];
  const kept: SnapshotMeta[] = [];
  for (const { meta, metaFile } of await readSnapshots(dir)) {
    if (new Date(meta.expires_at).getTime() > now.getTime()) {
      kept.push(meta);
      continue;
    }
    // The dump's name comes from the metadata: it must name a file of this directory.
    const dump =
      /^[A-Za-z0-9._-]+$/.test(meta.file) && !meta.file.startsWith('.') ? meta.file : null;
    if (dump) {
      await unlink(join(dir, dump)).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
      });
    }
    await unlink(join(dir, metaFile));
    removed.push(meta);
  }
  return { removed, kept };
}
