import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { pathOf } from '../edge/upstream.js';

/**
 * Every error the admin API answers with, in one place (like Fastify's own
 * errors.js): its code, its status and how its message reads. Each answer
 * is JSON `{"error": code, "message": text, ...details}`; the codes are part
 * of the contract (docs/architecture.md, "Proxy: admin listener").
 */

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

  /** The same error with fields added to its body and headers to its answer. */
  with(extra: { details?: Record<string, unknown>; headers?: Record<string, string> }): AdminError {
    return new AdminError(
      this.statusCode,
      this.code,
      this.message,
      { ...this.details, ...extra.details },
      { ...this.headers, ...extra.headers },
    );
  }
}

/** One entry of the catalogue: a code, its status, and its message for the given arguments. */
export class AdminErrorKind<Code extends string, Status extends number, Args extends unknown[]> {
  constructor(
    readonly code: Code,
    readonly statusCode: Status,
    readonly message: (...args: Args) => string,
  ) {}

  create(...args: Args): AdminError {
    return new AdminError(this.statusCode, this.code, this.message(...args));
  }
}

function kind<Code extends string, Status extends number, Args extends unknown[] = []>(
  code: Code,
  statusCode: Status,
  message: (...args: Args) => string,
): AdminErrorKind<Code, Status, Args> {
  return new AdminErrorKind(code, statusCode, message);
}

export const ADMIN_ERRORS = {
  // 400: the request itself
  slotMissing: kind('invalid_slot', 400, () => 'slot is required: blue or green'),
  slotInvalid: kind(
    'invalid_slot',
    400,
    (value: string) => `slot must be blue or green, not ${value}`,
  ),
  parameterRepeated: kind(
    'invalid_parameter',
    400,
    (name: string) => `${name} is given more than once`,
  ),
  parameterTwice: kind(
    'invalid_parameter',
    400,
    (name: string) => `${name} is given both in the query string and in the body`,
  ),
  parameterNotBoolean: kind(
    'invalid_parameter',
    400,
    (name: string, expected: string, value: string) => `${name} must be ${expected}, not ${value}`,
  ),
  parameterNotInteger: kind(
    'invalid_parameter',
    400,
    (name: string, bound: string, value: string) =>
      `${name} must be an integer ${bound}, not ${value}`,
  ),
  unknownParameters: kind('unknown_parameter', 400, (names: string[], known: readonly string[]) => {
    const list = known.length > 0 ? `known: ${known.join(', ')}` : 'this route takes none';
    return `unknown parameter${names.length > 1 ? 's' : ''} ${names.map((n) => JSON.stringify(n)).join(', ')} (${list})`;
  }),
  actorInvalid: kind(
    'invalid_header',
    400,
    () => 'X-Actor must be 1 to 128 printable ASCII characters, given once',
  ),
  bodyNotObject: kind('invalid_body', 400, () => 'the body must be a JSON object'),
  bodyLengthMismatch: kind('invalid_body', 400, () => 'the body does not match its Content-Length'),
  // JSON.parse's own wording changes between Node versions; the answer stays stable.
  bodyNotJson: kind('invalid_json', 400, () => 'the body is not valid JSON'),
  bodyTypeUnread: kind(
    'unsupported_media_type',
    400,
    (type: string) =>
      `a body of Content-Type ${type} is not read; send JSON (Content-Type: application/json) or use query parameters`,
  ),
  contentTypeInvalid: kind(
    'unsupported_media_type',
    400,
    () => 'the Content-Type header is not valid',
  ),
  urlMalformed: kind('invalid_url', 400, () => 'the request URL is malformed'),
  /** Any other client error Fastify reports, with its own status and message. */
  badRequest: kind('bad_request', 400, (message: string) => message),
  bodyTooLarge: kind('payload_too_large', 413, () => 'the body is larger than 16 KiB'),

  // 401, 429: the key (messages of auth.ts's verdicts)
  keyMissing: kind(
    'unauthorized',
    401,
    () => 'missing Authorization header: send Authorization: Bearer <ADMIN_API_KEY>',
  ),
  keyMalformed: kind(
    'unauthorized',
    401,
    () => 'the Authorization header is not of the form Bearer <ADMIN_API_KEY>',
  ),
  keyWrong: kind('unauthorized', 401, () => 'wrong admin API key'),
  tooManyAttempts: kind(
    'too_many_attempts',
    429,
    (address: string, retryAfterSeconds: number) =>
      `too many failed authentication attempts from ${address}; retry after ${retryAfterSeconds} s`,
  ),

  // 404, 405: the route
  notFound: kind('not_found', 404, (method: string, path: string) => `no route ${method} ${path}`),
  methodNotAllowed: kind(
    'method_not_allowed',
    405,
    (method: string, path: string, allowed: readonly string[]) =>
      `${method} is not allowed on ${path}; use ${allowed.filter((m) => m !== 'HEAD').join(' or ')}`,
  ),

  // 409, 503: the switch service's refusals, in its own words
  epochConflict: kind('epoch_conflict', 409, (why: string) => why),
  targetUnhealthy: kind('target_unhealthy', 409, (why: string) => why),
  noPreviousSlot: kind('no_previous_slot', 409, (why: string) => why),
  storeUnavailable: kind('store_unavailable', 503, (why: string) => why),

  // 503: the proxy cannot answer now
  historyUnavailable: kind(
    'store_unavailable',
    503,
    (why: string) => `the slot store is unavailable: ${why}`,
  ),
  shuttingDown: kind('shutting_down', 503, () => 'the proxy is shutting down'),
  workersUnresponsive: kind(
    'workers_unresponsive',
    503,
    (workers: string, timeoutMs: number) =>
      `no metrics from worker ${workers} within ${timeoutMs} ms`,
  ),

  // 500: a bug; the log has the error
  internal: kind('internal_error', 500, () => 'the admin API failed to answer; see the proxy log'),
} as const;

/** Maps our own errors and Fastify's (body size, media type...) to the catalogue. */
export function asAdminError(error: unknown): AdminError {
  if (error instanceof AdminError) return error;
  const code = (error as { code?: unknown }).code;
  const statusCode = (error as { statusCode?: unknown }).statusCode;
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return ADMIN_ERRORS.bodyTooLarge.create();
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return ADMIN_ERRORS.contentTypeInvalid.create();
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return ADMIN_ERRORS.bodyLengthMismatch.create();
    case 'FST_ERR_BAD_URL':
    case 'FST_ERR_ASYNC_CONSTRAINT':
      return ADMIN_ERRORS.urlMalformed.create();
  }
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    const { code: bad, message } = ADMIN_ERRORS.badRequest;
    return new AdminError(
      statusCode,
      bad,
      message(error instanceof Error ? error.message : 'bad request'),
    );
  }
  return ADMIN_ERRORS.internal.create();
}

/** Every error answer of the admin API: the catalogue's status, headers and JSON body. */
export function installErrorHandler(app: FastifyInstance, logger: Logger): void {
  app.setErrorHandler(async (error, request, reply) => {
    const rendered = asAdminError(error);
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
