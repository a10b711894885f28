import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { AdminAuth } from './auth.js';
import { pathOf } from '../edge/upstream.js';
import { ADMIN_ERRORS, AdminError, installErrorHandler } from './errors.js';
import { describeValue } from './params.js';
import { operationsRoutes, type MetricsSource } from './routes/operations.js';
import { stateRoutes, type StateRoutesOptions } from './routes/state.js';
import { switchRoutes, type SwitchRoutesOptions } from './routes/switch.js';

export interface AdminApiOptions extends SwitchRoutesOptions, StateRoutesOptions {
  auth: AdminAuth;
  metrics: MetricsSource;
  logger: Logger;
}

/** Which methods each route answers; any other method on it is a 405. */
const ROUTES: Record<string, string[]> = {
  '/admin/switch': ['POST'],
  '/admin/rollback': ['POST'],
  '/admin/status': ['GET', 'HEAD'],
  '/admin/history': ['GET', 'HEAD'],
  '/metrics': ['GET', 'HEAD'],
  '/healthz': ['GET', 'HEAD'],
};

/**
 * The admin listener: switch, rollback, status, history, metrics, liveness,
 * each group a Fastify plugin (routes/). Every /admin/* request must carry
 * the admin key; every error is JSON, from the catalogue (errors.ts).
 */
export function buildAdminApi(options: AdminApiOptions): FastifyInstance {
  const app = Fastify({
    logger: false,
    bodyLimit: 16 * 1024,
    // The listener is on loopback or behind an operator's own network: the
    // peer address is the client (the failed-attempt brake keys on it).
    trustProxy: false,
    // Answered by the hook below, in the JSON error shape.
    return503OnClosing: false,
    exposeHeadRoutes: true,
  });

  installBodyParsers(app);
  installErrorHandler(app, options.logger);

  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });

  app.addHook('onRequest', async (request) => {
    const path = pathOf(request.url);
    if (closing && path !== '/metrics') {
      throw ADMIN_ERRORS.shuttingDown.create().with({ headers: { connection: 'close' } });
    }
    if (!isAdminPath(path)) return;
    const verdict = options.auth.check(request.ip, request.headers.authorization);
    if (verdict.ok) return;
    // The verdict's code, status and message are the catalogue's (auth.ts).
    const refusal = new AdminError(verdict.status, verdict.error, verdict.message);
    if (verdict.status === 429) {
      options.logger.warn({ ip: request.ip }, 'admin API: address refused after failed attempts');
      throw refusal.with({ headers: { 'retry-after': String(verdict.retryAfterSeconds) } });
    }
    if (request.headers.authorization !== undefined) {
      options.logger.warn({ ip: request.ip, path }, 'admin API: wrong key');
    }
    throw refusal.with({ headers: { 'www-authenticate': verdict.challenge } });
  });

  app.addHook('onResponse', async (request, reply) => {
    const path = pathOf(request.url);
    const fields = {
      method: request.method,
      path,
      status: reply.statusCode,
      ip: request.ip,
      duration_ms: Math.round(reply.elapsedTime),
    };
    if (isAdminPath(path)) options.logger.info(fields, 'admin request');
    else options.logger.debug(fields, 'admin request');
  });

  void app.register(switchRoutes, { switches: options.switches });
  void app.register(stateRoutes, { status: options.status, history: options.history });
  void app.register(operationsRoutes, { metrics: options.metrics });

  app.setNotFoundHandler(async (request) => {
    const path = pathOf(request.url);
    const allowed = ROUTES[path];
    if (allowed) {
      throw ADMIN_ERRORS.methodNotAllowed
        .create(request.method, path, allowed)
        .with({ headers: { allow: allowed.join(', ') } });
    }
    throw ADMIN_ERRORS.notFound.create(request.method, path);
  });

  return app;
}

/** Only JSON bodies are read; an empty body is no body. */
function installBodyParsers(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, text, done) => {
    const body = typeof text === 'string' ? text : text.toString('utf8');
    if (body.trim() === '') {
      done(null, undefined);
      return;
    }
    try {
      done(null, JSON.parse(body));
    } catch {
      done(ADMIN_ERRORS.bodyNotJson.create(), undefined);
    }
  });
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (request, body, done) => {
    if (body.length === 0) {
      done(null, undefined);
      return;
    }
    const type = request.headers['content-type'] ?? 'none';
    done(ADMIN_ERRORS.bodyTypeUnread.create(describeValue(type)), undefined);
  });
}

function isAdminPath(path: string): boolean {
  return path === '/admin' || path.startsWith('/admin/');
}
