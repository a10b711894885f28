import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { BuildInfo } from '../common/build-info.js';
import { collectProcessMetrics } from '../common/process-metrics.js';
import { requestIdFrom } from '../common/request-id.js';
import type { Slot } from '../common/slot.js';
import type { Database } from './database.js';
import { allowOnly } from './http-methods.js';
import type { Lifecycle } from './lifecycle.js';
import { registerProblemHandlers } from './problem.js';

/** Label of requests that matched no route: raw paths would make the label set unbounded. */
export const UNMATCHED_ROUTE = 'unmatched';

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export interface MetricsDeps {
  registry: Registry;
  build: BuildInfo;
  slot: Slot | null;
  database: Database;
  lifecycle: Lifecycle;
}

/**
 * The app's metrics on the registry it is given (one per app, so tests and
 * several apps in a process do not collide), and the hook that records
 * every request by method, route template and status. The app itself does
 * not serve them: buildMetricsApp does, on a listener of its own.
 */
export function registerMetrics(app: FastifyInstance, deps: MetricsDeps): void {
  const { registry } = deps;
  collectProcessMetrics(registry);

  new Gauge({
    name: 'togather_app_info',
    help: 'Build of the running app (always 1)',
    labelNames: ['version', 'commit', 'build_date', 'slot'],
    registers: [registry],
  })
    .labels(deps.build.version, deps.build.git_commit, deps.build.build_date, deps.slot ?? 'none')
    .set(1);

  const requests = new Counter({
    name: 'togather_http_requests_total',
    help: 'HTTP requests answered, by method, route template and status',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'togather_http_request_duration_seconds',
    help: 'Time from request to response, by method and route template',
    labelNames: ['method', 'route'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  new Gauge({
    name: 'togather_http_inflight_requests',
    help: 'Requests being handled now',
    registers: [registry],
    collect() {
      this.set(deps.lifecycle.inflight);
    },
  });
  new Gauge({
    name: 'togather_app_draining',
    help: '1 while the app drains for shutdown',
    registers: [registry],
    collect() {
      this.set(deps.lifecycle.draining ? 1 : 0);
    },
  });

  const poolGauge = (
    name: string,
    help: string,
    read: (s: ReturnType<Database['poolStats']>) => number,
  ) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read(deps.database.poolStats()));
      },
    });
  poolGauge('togather_db_pool_connections', 'Open database connections', (s) => s.total);
  poolGauge('togather_db_pool_idle_connections', 'Idle database connections', (s) => s.idle);
  poolGauge(
    'togather_db_pool_waiting_requests',
    'Queries waiting for a database connection',
    (s) => s.waiting,
  );
  poolGauge(
    'togather_db_pool_max_connections',
    'Size limit of the pool (DATABASE_POOL_MAX)',
    (s) => s.max,
  );

  app.addHook('onResponse', async (request, reply) => {
    const method = KNOWN_METHODS.has(request.method) ? request.method : 'OTHER';
    const route = request.routeOptions.url ?? UNMATCHED_ROUTE;
    requests.labels(method, route, String(reply.statusCode)).inc();
    duration.labels(method, route).observe(reply.elapsedTime / 1000);
  });
}

export interface MetricsAppDeps {
  registry: Registry;
  logger: Logger;
}

/**
 * The internal listener of METRICS_PORT: `GET /metrics` (and HEAD) with the
 * registry's Prometheus text, OPTIONS 204, other methods 405, any other path
 * the app's 404 problem. It is a server of its own so that the edge proxy,
 * which forwards every path of the app's port, can never expose it, and so
 * that scrapes neither count as app requests nor hold up a drain.
 */
export function buildMetricsApp(deps: MetricsAppDeps): FastifyInstance {
  const app: FastifyInstance = Fastify({
    loggerInstance: deps.logger.child({ listener: 'metrics' }) as FastifyBaseLogger,
    logController: new LogController({
      disableRequestLogging: true,
      requestIdLogLabel: 'request_id',
    }),
    genReqId: (request) => requestIdFrom(request.headers['x-request-id']),
    // A scraper's keep-alive connection must not keep the process up at exit.
    forceCloseConnections: true,
  });
  registerProblemHandlers(app);
  app.get('/metrics', async (_request, reply) =>
    reply.type(deps.registry.contentType).send(await deps.registry.metrics()),
  );
  allowOnly(app, '/metrics', ['GET']);
  return app;
}
