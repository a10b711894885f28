import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { AdminAuth } from './auth.js';
import { pathOf } from '../edge/upstream.js';
import { shownGateResult } from './health-gate.js';
import { isSlot, type Slot } from '../../common/slot.js';
import { StoreUnavailableError } from '../state/store.js';
import type { SwitchRecord } from '../state/switch-record.js';
import type {
  SwitchOutcome,
  SwitchRefusal,
  SwitchRequest,
  SwitchService,
} from './switch-service.js';

/** An admin API error: rendered as `{"error": code, "message": text, ...details}`. */
export class AdminError extends Error {
  override name = 'AdminError';
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Prometheus exposition, as a prom-client Registry provides it. */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

export interface AdminApiOptions {
  switches: Pick<SwitchService, 'switch' | 'rollback'>;
  auth: AdminAuth;
  /**
   * The body of GET /admin/status; built from memory only, never waits on a
   * slot (with workers, it asks them over IPC, with a timeout).
   */
  status: () => object | Promise<object>;
  history: (limit: number) => Promise<SwitchRecord[]>;
  metrics: MetricsSource;
  logger: Logger;
}

const REFUSAL_STATUS: Record<SwitchRefusal, number> = {
  store_unavailable: 503,
  epoch_conflict: 409,
  target_unhealthy: 409,
  no_previous_slot: 409,
};

/** Which methods each route answers; any other method on it is a 405. */
const ROUTES: Record<string, string[]> = {
  '/admin/switch': ['POST'],
  '/admin/rollback': ['POST'],
  '/admin/status': ['GET', 'HEAD'],
  '/admin/history': ['GET', 'HEAD'],
  '/metrics': ['GET', 'HEAD'],
  '/healthz': ['GET', 'HEAD'],
};

const HISTORY_DEFAULT = 50;
const HISTORY_MAX = 1000;
const ACTOR = /^[\x21-\x7e](?:[\x20-\x7e]{0,126}[\x21-\x7e])?$/;

/**
 * The admin listener: switch, rollback, status, history, metrics, liveness.
 * Every /admin/* request must carry the admin key; every error is JSON.
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
  installErrorHandling(app, options.logger);

  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });

  app.addHook('onRequest', async (request) => {
    if (closing && pathOf(request.url) !== '/metrics') {
      throw new AdminError(
        503,
        'shutting_down',
        'the proxy is shutting down',
        {},
        {
          connection: 'close',
        },
      );
    }
    if (!isAdminPath(pathOf(request.url))) return;
    const verdict = options.auth.check(request.ip, request.headers.authorization);
    if (verdict.ok) return;
    if (verdict.status === 429) {
      options.logger.warn({ ip: request.ip }, 'admin API: address refused after failed attempts');
      throw new AdminError(
        429,
        verdict.error,
        verdict.message,
        {},
        {
          'retry-after': String(verdict.retryAfterSeconds),
        },
      );
    }
    if (request.headers.authorization !== undefined) {
      options.logger.warn({ ip: request.ip, path: pathOf(request.url) }, 'admin API: wrong key');
    }
    throw new AdminError(
      401,
      verdict.error,
      verdict.message,
      {},
      {
        'www-authenticate': verdict.challenge,
      },
    );
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

  app.post('/admin/switch', async (request, reply) => {
    const params = readParams(request, ['slot', 'force', 'expect_epoch']);
    const slot = slotParam(params.slot);
    const outcome = await options.switches.switch(slot, switchRequest(request, params));
    return sendOutcome(reply, outcome, slot);
  });

  app.post('/admin/rollback', async (request, reply) => {
    const params = readParams(request, ['force', 'expect_epoch']);
    const outcome = await options.switches.rollback(switchRequest(request, params));
    return sendOutcome(reply, outcome, outcome.ok ? outcome.state.active : undefined);
  });

  app.get('/admin/status', async (request) => {
    readParams(request, []);
    return options.status();
  });

  app.get('/admin/history', async (request) => {
    const params = readParams(request, ['limit']);
    const limit =
      params.limit === undefined
        ? HISTORY_DEFAULT
        : integerParam('limit', params.limit, { min: 1, max: HISTORY_MAX });
    try {
      return { history: await options.history(limit) };
    } catch (error) {
      if (error instanceof StoreUnavailableError) {
        throw new AdminError(
          503,
          'store_unavailable',
          `the slot store is unavailable: ${error.message}`,
        );
      }
      throw error;
    }
  });

  app.get('/metrics', async (request, reply) => {
    readParams(request, []);
    const text = await options.metrics.metrics();
    return reply.type(options.metrics.contentType).send(text);
  });

  app.get('/healthz', async (request) => {
    readParams(request, []);
    return { status: 'ok' };
  });

  app.setNotFoundHandler(async (request) => {
    const path = pathOf(request.url);
    const allowed = ROUTES[path];
    if (allowed) {
      throw new AdminError(
        405,
        'method_not_allowed',
        `${request.method} is not allowed on ${path}; use ${allowed.filter((m) => m !== 'HEAD').join(' or ')}`,
        {},
        { allow: allowed.join(', ') },
      );
    }
    throw new AdminError(404, 'not_found', `no route ${request.method} ${path}`);
  });

  return app;
}

function sendOutcome(reply: FastifyReply, outcome: SwitchOutcome, slot: Slot | undefined) {
  if (outcome.ok) {
    const { active, previous, epoch, switched_at } = outcome.state;
    return reply.send({ active, previous, epoch, changed: outcome.changed, switched_at });
  }
  const details: Record<string, unknown> = {};
  if (slot) details.slot = slot;
  if (outcome.state) {
    details.active = outcome.state.active;
    details.epoch = outcome.state.epoch;
  }
  if (outcome.health) details.health = shownGateResult(outcome.health);
  throw new AdminError(REFUSAL_STATUS[outcome.error], outcome.error, outcome.message, details);
}

function switchRequest(request: FastifyRequest, params: Params): SwitchRequest {
  const out: SwitchRequest = { actor: actorOf(request) };
  if (params.force !== undefined) out.force = booleanParam('force', params.force);
  if (params.expect_epoch !== undefined) {
    out.expectEpoch = integerParam('expect_epoch', params.expect_epoch, {
      min: 0,
      max: Number.MAX_SAFE_INTEGER,
    });
  }
  return out;
}

/** X-Actor names who switched in the audit history; `api` when absent. */
function actorOf(request: FastifyRequest): string {
  const header = request.headers['x-actor'];
  if (header === undefined || header === '') return 'api';
  if (typeof header !== 'string' || !ACTOR.test(header)) {
    throw new AdminError(
      400,
      'invalid_header',
      'X-Actor must be 1 to 128 printable ASCII characters, given once',
    );
  }
  return header;
}

/** A parameter as given: a query string value (text) or a JSON body field (any JSON value). */
interface Param {
  value: unknown;
  from: 'query' | 'body';
}
type Params = Partial<Record<string, Param>>;

/**
 * Merges query parameters and JSON body fields, refusing names the route does
 * not know, names given twice, and bodies that are not JSON objects.
 */
function readParams(request: FastifyRequest, allowed: readonly string[]): Params {
  const params: Params = {};
  const unknown: string[] = [];
  const query = (request.query ?? {}) as Record<string, unknown>;
  for (const [name, value] of Object.entries(query)) {
    if (!allowed.includes(name)) unknown.push(name);
    else if (Array.isArray(value)) {
      throw new AdminError(400, 'invalid_parameter', `${name} is given more than once`);
    } else params[name] = { value, from: 'query' };
  }
  const body: unknown = request.body;
  if (body !== undefined) {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new AdminError(400, 'invalid_body', 'the body must be a JSON object');
    }
    for (const [name, value] of Object.entries(body)) {
      if (!allowed.includes(name)) unknown.push(name);
      else if (params[name] !== undefined) {
        throw new AdminError(
          400,
          'invalid_parameter',
          `${name} is given both in the query string and in the body`,
        );
      } else params[name] = { value, from: 'body' };
    }
  }
  if (unknown.length > 0) {
    const known = allowed.length > 0 ? `known: ${allowed.join(', ')}` : 'this route takes none';
    throw new AdminError(
      400,
      'unknown_parameter',
      `unknown parameter${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => JSON.stringify(n)).join(', ')} (${known})`,
    );
  }
  return params;
}

function slotParam(param: Param | undefined): Slot {
  if (param === undefined) {
    throw new AdminError(400, 'invalid_slot', 'slot is required: blue or green');
  }
  if (!isSlot(param.value)) {
    throw new AdminError(
      400,
      'invalid_slot',
      `slot must be blue or green, not ${describeValue(param.value)}`,
    );
  }
  return param.value;
}

function booleanParam(name: string, param: Param): boolean {
  const { value, from } = param;
  if (typeof value === 'boolean' && from === 'body') return value;
  if (from === 'query' && (value === 'true' || value === 'false')) return value === 'true';
  const expected = from === 'body' ? 'a JSON boolean' : 'true or false';
  throw new AdminError(
    400,
    'invalid_parameter',
    `${name} must be ${expected}, not ${describeValue(value)}`,
  );
}

function integerParam(name: string, param: Param, range: { min: number; max: number }): number {
  const { value, from } = param;
  let n: number | undefined;
  if (from === 'body' && typeof value === 'number') n = value;
  if (from === 'query' && typeof value === 'string' && /^\d{1,16}$/.test(value)) n = Number(value);
  if (n === undefined || !Number.isSafeInteger(n) || n < range.min || n > range.max) {
    const bound =
      range.max === Number.MAX_SAFE_INTEGER ? `>= ${range.min}` : `${range.min}..${range.max}`;
    throw new AdminError(
      400,
      'invalid_parameter',
      `${name} must be an integer ${bound}, not ${describeValue(value)}`,
    );
  }
  return n;
}

function describeValue(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 64 ? `${text.slice(0, 61)}...` : text;
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
      // JSON.parse's own wording changes between Node versions; the answer stays stable.
      done(new AdminError(400, 'invalid_json', 'the body is not valid JSON'), undefined);
    }
  });
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (request, body, done) => {
    if (body.length === 0) {
      done(null, undefined);
      return;
    }
    const type = request.headers['content-type'] ?? 'none';
    done(
      new AdminError(
        400,
        'unsupported_media_type',
        `a body of Content-Type ${describeValue(type)} is not read; send JSON (Content-Type: application/json) or use query parameters`,
      ),
      undefined,
    );
  });
}

function installErrorHandling(app: FastifyInstance, logger: Logger): void {
  app.setErrorHandler(async (error, request, reply) => {
    const rendered = renderError(error);
    if (rendered.statusCode >= 500 && !(error instanceof AdminError)) {
      logger.error(
        { err: error, method: request.method, path: pathOf(request.url) },
        'admin API error',
      );
    }
    for (const [name, value] of Object.entries(rendered.headers)) reply.header(name, value);
    return reply
      .code(rendered.statusCode)
      .type('application/json; charset=utf-8')
      .send({ error: rendered.code, message: rendered.message, ...rendered.details });
  });
}

/** Maps our own errors and Fastify's (body size, media type...) to the JSON error shape. */
function renderError(error: unknown): AdminError {
  if (error instanceof AdminError) return error;
  const code = (error as { code?: unknown }).code;
  const statusCode = (error as { statusCode?: unknown }).statusCode;
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AdminError(413, 'payload_too_large', 'the body is larger than 16 KiB');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AdminError(400, 'unsupported_media_type', 'the Content-Type header is not valid');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new AdminError(400, 'invalid_body', 'the body does not match its Content-Length');
    case 'FST_ERR_BAD_URL':
    case 'FST_ERR_ASYNC_CONSTRAINT':
      return new AdminError(400, 'invalid_url', 'the request URL is malformed');
  }
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    const message = error instanceof Error ? error.message : 'bad request';
    return new AdminError(statusCode, 'bad_request', message);
  }
  return new AdminError(500, 'internal_error', 'the admin API failed to answer; see the proxy log');
}

function isAdminPath(path: string): boolean {
  return path === '/admin' || path.startsWith('/admin/');
}
