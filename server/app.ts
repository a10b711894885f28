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
import { registerCors } from './cors.js';
import { createEventRepository } from './events/repository.js';
import { eventResource } from './events/resource.js';
import { databaseCheck, migrationsCheck, registerHealthRoutes } from './health.js';
import { httpEndpointCheck, SELF_CHECK_USER_AGENT } from './http-endpoint-check.js';
import { Lifecycle } from './lifecycle.js';
import { LoginLimiter } from './login-limiter.js';
import { registerMetrics } from './metrics.js';
import type { Migration } from './migrate.js';
import {
  registerOpenApiGenerator,
  registerOpenApiRoutes,
  registerSchemaCompilers,
} from './openapi.js';
import {
  createOrganizationRepository,
  organizationResource,
} from './organizations/organization.js';
import { createPlaceRepository, placeResource } from './places/place.js';
import { BODY_LIMIT_BYTES, registerProblemHandlers } from './problem.js';
import { registerResourceRoutes } from './resources/routes.js';
import { registerSecurityHeaders } from './security-headers.js';
import { registerVersionRoute } from './version-route.js';

/** The parts of the configuration the HTTP app reads. */
export type AppSettings = Pick<
  ServerConfig,
  'slot' | 'auth' | 'trustProxy' | 'publicUrl' | 'keepAliveTimeoutMs' | 'cors'
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
    // The health check's request to the app itself would double the lines of every probe.
    const level = request.headers['user-agent'] === SELF_CHECK_USER_AGENT ? 'debug' : 'info';
    request.log[level](
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
  registerSecurityHeaders(app);
  registerSchemaCompilers(app);
  registerOpenApiGenerator(app, build);
  registerCors(app, settings.cors);
  registerMetrics(app, {
    registry: deps.registry,
    build,
    slot: settings.slot,
    database,
    lifecycle,
  });
  const auth = createAdminAuth(settings.auth, now);
  const writeDeps = {
    requireAdmin: requireAdmin(auth),
    baseUrl: (request: FastifyRequest) => settings.publicUrl ?? requestBaseUrl(request),
  };
  // In a plugin, so that they load after @fastify/swagger, which documents
  // the routes registered after it.
  void app.register(async (routes) => {
    registerHealthRoutes(routes, {
      checks: {
        database: databaseCheck(database),
        migrations: migrationsCheck(database, deps.migrations),
        http_endpoint: httpEndpointCheck({ address: () => app.server.address() }),
      },
      lifecycle,
      build,
      slot: settings.slot,
      checkTimeoutMs: deps.healthCheckTimeoutMs ?? 2000,
      now,
    });
    registerVersionRoute(routes, build);
    registerOpenApiRoutes(routes);
    registerAdminLogin(routes, { auth, limiter: deps.limiter ?? new LoginLimiter({ now }) });
    registerResourceRoutes(routes, eventResource, {
      repository: createEventRepository(database),
      ...writeDeps,
    });
    registerResourceRoutes(routes, placeResource, {
      repository: createPlaceRepository(database),
      ...writeDeps,
    });
    registerResourceRoutes(routes, organizationResource, {
      repository: createOrganizationRepository(database),
      ...writeDeps,
    });
    deps.extraRoutes?.(routes);
  });
  return app;
}

function requestBaseUrl(request: FastifyRequest): string {
  const host = SANE_HOST.test(request.host) ? request.host : 'localhost';
  return `${request.protocol}://${host}`;
}
