import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

/**
 * pglite-socket accepts `maxConnections` sockets at once (its default is 1)
 * and runs their queries one at a time on the single PGlite instance, keeping
 * an open transaction's queries together. Two slots with pools of
 * DEV_POOL_MAX each, plus a replacement slot during a deploy and the
 * migrate/snapshot commands, stay under this.
 */
export const DEV_MAX_CONNECTIONS = 20;
export const DEV_POOL_MAX = 5;

export interface DevDatabase {
  url: string;
  /** Where the data lives (kept between runs). */
  dataDir: string;
  stop(): Promise<void>;
}

/**
 * An embedded PostgreSQL for `togather dev`: PGlite on disk, served over the
 * PostgreSQL wire protocol on 127.0.0.1 so that both slot processes (and
 * migrate) share one database, as they share PostgreSQL in production.
 */
export async function startDevDatabase(dataDir: string, port: number): Promise<DevDatabase> {
  mkdirSync(dataDir, { recursive: true });
  const db = await PGlite.create({ dataDir });
  const server = new PGLiteSocketServer({
    db,
    host: '127.0.0.1',
    port,
    maxConnections: DEV_MAX_CONNECTIONS,
  });
  try {
    await server.start();
  } catch (error) {
    await db.close();
    throw error;
  }
  const actualPort = Number(server.getServerConn().split(':').pop());
  return {
    url: `postgres://postgres@127.0.0.1:${actualPort}/postgres`,
    dataDir,
    async stop() {
      await server.stop();
      await db.close();
    },
  };
}
