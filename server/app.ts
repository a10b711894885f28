import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyRequest,
} from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { buildInfo, type BuildInfo } from '../common/build-info.js';
import { requestIdFrom } from '../common/request-id.js';
import { registerAdminLogin } from './admin-login.js';
import { createAdminAuth, requireAdmin } from './auth.js';
import type { ServerConfig } from './config.js';
import type { Database } from './database.js';
import { createEventRepository } from './events/repository.js';
import { registerEventRoutes } from './events/routes.js';
import { databaseCheck, migrationsCheck, registerHealthRoutes } from './health.js';
import { Lifecycle } from './lifecycle.js';
import { LoginLimiter } from './login-limiter.js';
import { registerMetrics } from './metrics.js';
import type { Migration } from './migrate.js';
import { BODY_LIMIT_BYTES, registerProblemHandlers } from './problem.js';
import { registerVersionRoute } from './version-route.js';

/** The parts of the configuration the HTTP app reads. */
export type AppSettings = Pick<
  ServerConfig,
  'slot' | 'auth' | 'trustProxy' | 'publicUrl' | 'keepAliveTimeoutMs'
>;

export interface AppDeps {
  settings: AppSettings;
  database: Database;
  logger: Logger;
  /** A registry of its own per app. */
  registry: Registry;
  /** The migrations of this build, which /health compares with the database. */
  migrations: readonly Migration[];
  build?: BuildInfo;
  lifecycle?: Lifecycle;
  limiter?: LoginLimiter;
  now?: () => number;
  /** Per-check bound of /health (2 s). */
  healthCheckTimeoutMs?: number;
  /** Extra routes, registered like the app's own (tests add slow ones here). */
  extraRoutes?: (app: FastifyInstance) => void;
}

/** A Host header fit to appear in an @id; anything else falls back to localhost. */
const SANE_HOST = /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/;

/** The Fastify app, not listening yet. */
export function buildApp(deps: AppDeps): FastifyInstance {
  const { settings, database } = deps;
  const build = deps.build ?? buildInfo();
  const lifecycle = deps.lifecycle ?? new Lifecycle();
  const now = deps.now ?? Date.now;

  const app: FastifyInstance = Fastify({
    // Typed as Fastify's logger so the instance is the plain FastifyInstance route modules take.
    loggerInstance: deps.logger as FastifyBaseLogger,
    // One access line per request is written below, with the route and timing.
    logController: new LogController({
      disableRequestLogging: true,
      requestIdLogLabel: 'request_id',
    }),
    genReqId: (request) => requestIdFrom(request.headers['x-request-id']),
    bodyLimit: BODY_LIMIT_BYTES,
    trustProxy: settings.trustProxy,
    keepAliveTimeout: settings.keepAliveTimeoutMs,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
  });

  // JSON only: text/plain bodies get 415; JSON-LD is JSON.
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser(
    'application/ld+json',
    { parseAs: 'string' },
    app.getDefaultJsonParser('error', 'error'),
  );

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    lifecycle.requestStarted();
    // 'close' fires for finished and aborted responses alike.
    reply.raw.once('close', () => lifecycle.requestFinished());
    if (lifecycle.draining) reply.header('connection', 'close');
  });
  app.addHook('onResponse', async (request, reply) => {
    request.log.info(
      {
        method: request.method,
        // Without the query string: clients put keys and tokens there too.
        url: request.url.split('?', 1)[0],
        route: request.routeOptions.url,
        status: reply.statusCode,
        duration_ms: Math.round(reply.elapsedTime * 10) / 10,
        client: request.ip,
      },
      'request completed',
    );
  });

  registerProblemHandlers(app);
  registerMetrics(app, {
    registry: deps.registry,
    build,
    slot: settings.slot,
    database,
    lifecycle,
  });
  registerHealthRoutes(app, {
    checks: {
      database: databaseCheck(database),
      migrations: migrationsCheck(database, deps.migrations),
    },
    lifecycle,
    build,
    slot: settings.slot,
    checkTimeoutMs: deps.healthCheckTimeoutMs ?? 2000,
    now,
  });
  registerVersionRoute(app, build);

  const auth = createAdminAuth(settings.auth, now);
  registerAdminLogin(app, { auth, limiter: deps.limiter ?? new LoginLimiter({ now }) });
  registerEventRoutes(app, {
    events: createEventRepository(database),
    requireAdmin: requireAdmin(auth),
    baseUrl: (request) => settings.publicUrl ?? requestBaseUrl(request),
  });

  deps.extraRoutes?.(app);
  return app;
}

function requestBaseUrl(request: FastifyRequest): string {
  const host = SANE_HOST.test(request.host) ? request.host : 'localhost';
  return `${request.protocol}://${host}`;
}
