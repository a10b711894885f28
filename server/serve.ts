import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { buildInfo } from '../common/build-info.js';
import { exitOnFatalErrors } from '../common/fatal-errors.js';
import { createLogger } from '../common/logger.js';
import { CommandFailed } from '../cli/errors.js';
import { buildApp } from './app.js';
import { loadServerConfig, type ServerConfig } from './config.js';
import { openDatabase, type Database } from './database.js';
import { DataDirBusyError } from './data-dir-lock.js';
import { Lifecycle } from './lifecycle.js';
import { buildMetricsApp } from './metrics.js';
import { loadMigrations, migrateUp, migrationLabel, migrationStatus } from './migrate.js';
import { createShutdown, exitOnSignals } from './shutdown.js';

export interface ServeOptions {
  /** Apply pending migrations before listening (`serve --migrate`; always on embedded PGlite). */
  migrate: boolean;
  env?: NodeJS.ProcessEnv;
}

/**
 * `togather serve`: validates the configuration (ConfigError → exit 2),
 * opens the database, listens, and stays up until SIGTERM/SIGINT, which
 * drain and exit (exitOnSignals). Resolves once listening.
 */
export async function serve(options: ServeOptions): Promise<void> {
  const config = loadServerConfig(options.env ?? process.env);
  const build = buildInfo();
  const logger = createLogger({
    level: config.log.level,
    format: config.log.format,
    name: 'togather-server',
    base: { slot: config.slot ?? undefined, version: build.version },
  });
  exitOnFatalErrors(logger);
  announceGeneratedSecrets(config);
  if (config.environment === 'production' && !config.database.url) {
    logger.warn(
      'ENVIRONMENT=production without DATABASE_URL: embedded PGlite serves this process only',
    );
  }

  const migrations = await loadMigrations();
  let database: Database;
  try {
    database = await openDatabase(config.database, {
      logger,
      applicationName: `togather-${config.slot ?? 'server'}`,
    });
  } catch (error) {
    if (error instanceof DataDirBusyError) throw new CommandFailed(error.message);
    throw error;
  }
  logger.info(
    { database: database.kind, target: database.target, pool_max: database.poolStats().max },
    'database configured',
  );

  // Embedded PGlite is this process's own database (its data directory is
  // locked to it), so no other process can be running on the old schema:
  // bringing it up to date at start is safe, and what `docker run IMAGE serve`
  // needs to answer /health 200. PostgreSQL is shared by the blue and green
  // slots, so there the migrations stay an explicit step (--migrate, or
  // `togather migrate up` as `togather deploy` runs it).
  const migrate = options.migrate || database.kind === 'pglite';
  try {
    if (migrate) {
      const applied = await migrateUp(database, migrations, { logger });
      logger.info(
        { applied: applied.map(migrationLabel), reason: options.migrate ? '--migrate' : 'pglite' },
        'migrations up to date',
      );
    } else {
      await reportSchema(database, migrations, logger);
    }
  } catch (error) {
    await database.close().catch(() => undefined);
    if (migrate) throw new CommandFailed(`migrate failed: ${(error as Error).message}`);
    throw error;
  }

  const lifecycle = new Lifecycle();
  const registry = new Registry();
  const app = buildApp({
    settings: config,
    database,
    logger,
    registry,
    migrations,
    build,
    lifecycle,
  });
  const metricsApp = buildMetricsApp({ registry, logger });
  const closeAll = async () => {
    await app.close().catch(() => undefined);
    await metricsApp.close().catch(() => undefined);
    await database.close().catch(() => undefined);
  };
  // The metrics listener first: a process that cannot open it never takes traffic.
  const metricsPort = await listenOrFail(
    metricsApp,
    config.metrics,
    'for /metrics (METRICS_PORT)',
    closeAll,
  );
  const port = await listenOrFail(app, config, '', closeAll);
  const metricsUrl = `http://${config.metrics.host}:${metricsPort}/metrics`;
  logger.info(
    {
      address: `http://${config.host}:${port}`,
      port,
      metrics_address: metricsUrl,
      slot: config.slot,
      environment: config.environment,
      database: database.kind,
      keep_alive_timeout_ms: config.keepAliveTimeoutMs,
    },
    `togather serve listening on http://${config.host}:${port} (metrics on ${metricsUrl})`,
  );

  const shutdown = createShutdown({
    app,
    lifecycle,
    logger,
    timeoutMs: config.shutdownTimeoutMs,
    // Scrapes go on while requests drain; the metrics listener closes with the database.
    release: async () => {
      await metricsApp.close();
      await database.close();
    },
  });
  exitOnSignals(shutdown, logger);
}

/** Listens, or closes everything and fails with the address and the reason; resolves to the port. */
async function listenOrFail(
  app: FastifyInstance,
  where: { host: string; port: number },
  what: string,
  closeAll: () => Promise<void>,
): Promise<number> {
  try {
    await app.listen({ host: where.host, port: where.port });
  } catch (error) {
    await closeAll();
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    const purpose = what ? ` ${what}` : '';
    throw new CommandFailed(`cannot listen on ${where.host}:${where.port}${purpose}: ${reason}`);
  }
  const address = app.server.address();
  return typeof address === 'object' && address ? address.port : where.port;
}

/** Without --migrate the schema is only looked at: a lagging one is logged, and /health fails. */
async function reportSchema(
  database: Database,
  migrations: Awaited<ReturnType<typeof loadMigrations>>,
  logger: ReturnType<typeof createLogger>,
): Promise<void> {
  try {
    const status = await migrationStatus(database, migrations);
    if (status.pending.length > 0 || status.dirty.length > 0) {
      logger.warn(
        {
          pending: status.pending.map(migrationLabel),
          dirty: status.dirty.map(migrationLabel),
        },
        'database schema is behind this build: run `togather migrate up` (or serve --migrate); /health fails until then',
      );
    }
  } catch (error) {
    logger.warn(
      { err: { message: (error as Error).message } },
      'database not reachable at start; serving anyway, /health reports it',
    );
  }
}

/**
 * Development and test runs without secrets get fresh ones; the credentials
 * an operator needs are printed once, here, and never logged.
 */
function announceGeneratedSecrets(config: ServerConfig): void {
  if (config.generatedSecrets.length === 0) return;
  const lines = [
    `togather serve: ENVIRONMENT=${config.environment}, generated for this run only: ${config.generatedSecrets.join(', ')}`,
  ];
  if (config.generatedSecrets.includes('ADMIN_API_KEY')) {
    lines.push(`  ADMIN_API_KEY=${config.auth.adminApiKey}`);
  }
  if (config.generatedSecrets.includes('ADMIN_PASSWORD')) {
    lines.push(
      `  ADMIN_USERNAME=${config.auth.adminUsername} ADMIN_PASSWORD=${config.auth.adminPassword}`,
    );
  }
  process.stdout.write(lines.join('\n') + '\n');
}
