import cors, { type FastifyCorsOptions } from '@fastify/cors';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { HttpProblem } from './problem.js';

/** CORS_ORIGINS parsed: `*` (any origin, public reads only) and/or exact origins. */
export interface CorsSettings {
  /** `*` was given: any origin may GET and HEAD, without credentials. */
  anyOrigin: boolean;
  /** Origins (scheme://host[:port]) that may also write, with Authorization. */
  origins: string[];
}

/** Paths browsers of other origins may call: the API and its OpenAPI document. */
function isApiPath(url: string): boolean {
  return url.startsWith('/api/') || url === '/openapi.json' || url.startsWith('/openapi.json?');
}

const READ_METHODS = new Set(['GET', 'HEAD']);

/** Headers a script of another origin may read from an answer. */
const EXPOSED = ['Location', 'Retry-After', 'X-Request-Id', 'X-Togather-Slot'];
const PREFLIGHT_MAX_AGE_SECONDS = 600;

/**
 * Parses CORS_ORIGINS: comma-separated exact origins and/or `*`. Returns
 * the problems (for the configuration error) or the settings.
 */
export function parseCorsOrigins(value: string): CorsSettings | { problems: string[] } {
  const problems: string[] = [];
  const settings: CorsSettings = { anyOrigin: false, origins: [] };
  for (const raw of value.split(',')) {
    const entry = raw.trim();
    if (entry === '*') {
      settings.anyOrigin = true;
      continue;
    }
    const origin = originOf(entry);
    if (origin === undefined) {
      const shown = entry === '' ? 'an empty entry' : `"${entry.slice(0, 100)}"`;
      problems.push(
        `${shown} is not an origin: give scheme://host[:port] (no path), or *, comma-separated`,
      );
    } else if (!settings.origins.includes(origin)) {
      settings.origins.push(origin);
    }
  }
  return problems.length > 0 ? { problems } : settings;
}

/** The normalized origin of an entry (lowercase host, no default port), if it is one. */
function originOf(entry: string): string | undefined {
  if (!/^https?:\/\/[^/?#\s]+\/?$/i.test(entry) || !URL.canParse(entry)) return undefined;
  const url = new URL(entry);
  if (url.username || url.password) return undefined;
  return url.origin;
}

/**
 * CORS on the API, through @fastify/cors with options chosen per request:
 * a listed origin may read and write (its Authorization header allowed in
 * preflights); with `*`, any other origin may only read (GET, HEAD) and
 * gets `Access-Control-Allow-Origin: *`. Credentials (cookies) are never
 * allowed: the API authenticates with a Bearer header, which needs none.
 * A preflight for something not allowed answers 403 saying why.
 */
export function registerCors(app: FastifyInstance, settings: CorsSettings): void {
  const listed = new Set(settings.origins);
  const delegator = (
    request: FastifyRequest,
    callback: (error: Error | null, options: FastifyCorsOptions) => void,
  ): void => {
    const origin = request.headers.origin;
    if (origin === undefined || !isApiPath(request.url)) return callback(null, { origin: false });
    const requested = request.headers['access-control-request-method'];
    const preflight = request.method === 'OPTIONS' && typeof requested === 'string';
    const method = preflight ? requested.toUpperCase() : request.method;
    const common = {
      exposedHeaders: EXPOSED,
      maxAge: PREFLIGHT_MAX_AGE_SECONDS,
      credentials: false,
      preflight,
      strictPreflight: false,
    };
    if (listed.has(origin)) {
      return callback(null, {
        ...common,
        origin,
        methods: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'],
        allowedHeaders: ['Authorization', 'Content-Type', 'X-Request-Id'],
      });
    }
    if (settings.anyOrigin && READ_METHODS.has(method)) {
      return callback(null, {
        ...common,
        origin: '*',
        methods: ['GET', 'HEAD'],
        allowedHeaders: ['Content-Type', 'X-Request-Id'],
      });
    }
    if (preflight) {
      const allowed = settings.anyOrigin ? 'only GET and HEAD' : 'nothing';
      return callback(
        new HttpProblem(
          403,
          `origin ${origin.slice(0, 200)} may not ${method.slice(0, 20)} here: CORS_ORIGINS allows it ${allowed}`,
        ),
        { origin: false },
      );
    }
    // Not allowed: answered without CORS headers, so the browser keeps the answer from the script.
    return callback(null, { origin: false });
  };
  void app.register(cors, { delegator, hideOptionsRoute: true });
}
