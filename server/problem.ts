import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { isConnectionError } from './connection-errors.js';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';

/** The request body limit; larger bodies get 413. */
export const BODY_LIMIT_BYTES = 1_048_576;

export interface FieldError {
  /** Dotted path of the field (location.name), or the query parameter. */
  field: string;
  message: string;
}

/**
 * An RFC 9457 problem: `type` stays about:blank, so `title` is the HTTP
 * status phrase and `detail` says what went wrong in this occurrence.
 * `request_id` and, for 400, `errors` are extension members.
 */
export interface ProblemBody {
  type: 'about:blank';
  title: string;
  status: number;
  detail: string;
  instance: string;
  request_id: string;
  errors?: FieldError[];
}

/** ProblemBody as a schema, for the OpenAPI document. */
export const problemSchema = z
  .object({
    type: z.literal('about:blank'),
    title: z.string().meta({ description: 'The HTTP status phrase' }),
    status: z.number().int(),
    detail: z.string().meta({ description: 'What went wrong in this occurrence' }),
    instance: z.string().meta({ description: 'The request path' }),
    request_id: z.string(),
    errors: z
      .array(z.object({ field: z.string(), message: z.string() }))
      .optional()
      .meta({ description: '400 only: every bad field or query parameter' }),
  })
  .meta({ description: 'RFC 9457 problem details' });

/** A response of the OpenAPI document: `description` with a problem+json body. */
export function problemResponse(description: string) {
  return { description, content: { 'application/problem+json': { schema: problemSchema } } };
}

/** Thrown by handlers and hooks; the error handler turns it into a problem response. */
export class HttpProblem extends Error {
  override name = 'HttpProblem';
  constructor(
    readonly status: number,
    readonly detail: string,
    readonly options: { errors?: FieldError[]; headers?: Record<string, string> } = {},
  ) {
    super(detail);
  }
}

/** The path without its query string (which may carry anything), bounded for echoing. */
export function requestPath(request: FastifyRequest): string {
  return (request.url.split('?')[0] ?? '/').slice(0, 256);
}

export function problemBody(
  request: FastifyRequest,
  status: number,
  detail: string,
  errors?: FieldError[],
): ProblemBody {
  return {
    type: 'about:blank',
    title: STATUS_CODES[status] ?? 'Error',
    status,
    detail,
    instance: requestPath(request),
    request_id: request.id,
    ...(errors ? { errors } : {}),
  };
}

export function sendProblem(
  request: FastifyRequest,
  reply: FastifyReply,
  problem: HttpProblem,
): FastifyReply {
  for (const [name, value] of Object.entries(problem.options.headers ?? {})) {
    reply.header(name, value);
  }
  return reply
    .code(problem.status)
    .type(PROBLEM_CONTENT_TYPE)
    .send(problemBody(request, problem.status, problem.detail, problem.options.errors));
}

/** 400 naming every bad field of a zod result. */
export function validationProblem(error: z.ZodError, what: 'body' | 'query'): HttpProblem {
  const errors: FieldError[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        errors.push({ field: [...issue.path, key].join('.'), message: 'is not a known field' });
      }
      continue;
    }
    errors.push({ field: issue.path.join('.') || `(${what})`, message: issue.message });
  }
  const fields = [...new Set(errors.map((e) => e.field))];
  const noun = what === 'body' ? 'fields' : 'query parameters';
  return new HttpProblem(400, `invalid ${noun}: ${fields.join(', ')}`, { errors });
}

/** Fastify's own errors (body parsing, limits) mapped to problems with a clear detail. */
function problemFromFastifyError(error: FastifyError, request: FastifyRequest): HttpProblem {
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new HttpProblem(400, 'request body is not valid JSON');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new HttpProblem(400, 'request body is empty; send a JSON object');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new HttpProblem(400, 'Content-Length does not match the body');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new HttpProblem(413, `request body is larger than ${BODY_LIMIT_BYTES} bytes (1 MiB)`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return unsupportedMediaType(request);
    default:
      break;
  }
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) return new HttpProblem(status, error.message);
  if (isConnectionError(error)) {
    return new HttpProblem(503, 'database unavailable; try again shortly', {
      headers: { 'retry-after': '5' },
    });
  }
  return new HttpProblem(500, 'internal error; the request id identifies it in the logs');
}

export function unsupportedMediaType(request: FastifyRequest): HttpProblem {
  const given = request.headers['content-type'];
  if (!given) {
    return new HttpProblem(415, 'missing Content-Type; send a JSON body as application/json');
  }
  const type = given.split(';')[0]!.trim().slice(0, 100);
  return new HttpProblem(415, `Content-Type ${type} is not supported; send application/json`);
}

/** The problem an error thrown by a handler, a hook or a route's schema stands for. */
export function problemFor(error: FastifyError, request: FastifyRequest): HttpProblem {
  if (error instanceof HttpProblem) return error;
  // A route schema (zod, through the app's validator compiler) refused the request.
  if (error instanceof z.ZodError) {
    const context = (error as { validationContext?: string }).validationContext;
    return validationProblem(error, context === 'body' ? 'body' : 'query');
  }
  return problemFromFastifyError(error, request);
}

/** The problem an error stands for, logged: 5xx as errors, Fastify's own 4xx at info. */
export function loggedProblem(error: FastifyError, request: FastifyRequest): HttpProblem {
  const problem = problemFor(error, request);
  if (problem.status >= 500) {
    request.log.error({ err: error }, 'request failed');
  } else if (!(error instanceof HttpProblem)) {
    request.log.info({ code: error.code, status: problem.status }, problem.detail);
  }
  return problem;
}

/** A preValidation hook: no body and no Content-Type is a 415, not a validation error. */
export async function requireBody(request: FastifyRequest): Promise<void> {
  if (request.body === undefined) throw unsupportedMediaType(request);
}

/** Every error and unknown route answers application/problem+json, never a stack trace. */
export function registerProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) =>
    sendProblem(request, reply, loggedProblem(error, request)),
  );
  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      request,
      reply,
      new HttpProblem(404, `no route for ${request.method} ${requestPath(request)}`),
    ),
  );
}
