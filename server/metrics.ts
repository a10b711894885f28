import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, collectDefaultMetrics, type Registry } from 'prom-client';
import type { BuildInfo } from '../common/build-info.js';
import type { Slot } from '../proxy/slot-state.js';
import type { Database } from './database.js';
import type { Lifecycle } from './lifecycle.js';

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
 * every request by method, route template and status.
 */
export function registerMetrics(app: FastifyInstance, deps: MetricsDeps): void {
  const { registry } = deps;
  collectDefaultMetrics({ register: registry });

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

  app.get('/metrics', async (_request, reply) =>
    reply.type(registry.contentType).send(await registry.metrics()),
  );
}
