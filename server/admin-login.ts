import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { AdminAuth } from './auth.js';
import { allowOnly } from './http-methods.js';
import { HTML_CONTENT_TYPE, LOGIN_PAGE_CSP, loginPage, signedInPage } from './login-page.js';
import type { LoginLimiter } from './login-limiter.js';
import {
  HttpProblem,
  loggedProblem,
  problemResponse,
  requireBody,
  sendProblem,
} from './problem.js';

export const LOGIN = '/api/v1/admin/login';
export const LOGIN_PAGE = '/admin/login';

const FORM = 'application/x-www-form-urlencoded';

const loginSchema = z.strictObject(
  {
    username: z.string({ error: 'is required' }).min(1, 'must not be empty').max(200),
    password: z.string({ error: 'is required' }).min(1, 'must not be empty').max(1000),
  },
  { error: 'must be a JSON object' },
);

const tokenSchema = z.object({
  access_token: z.string().meta({ description: 'An admin JWT: send it as a Bearer token' }),
  token_type: z.literal('Bearer'),
  expires_in: z.number().int().meta({ description: 'Seconds until it expires (JWT_TTL)' }),
});

const html = (description: string) => ({
  description,
  content: { 'text/html': { schema: z.string() } },
});

export interface AdminLoginDeps {
  auth: AdminAuth;
  limiter: LoginLimiter;
}

/** A browser's form post: it gets pages back, not JSON. */
function isFormPost(request: FastifyRequest): boolean {
  const type = request.headers['content-type'] ?? '';
  return request.method === 'POST' && type.toLowerCase().startsWith(FORM);
}

/** What a page tells a person about a failed form sign-in: why, never whether the user exists. */
function pageMessage(problem: HttpProblem): string {
  switch (problem.status) {
    case 400:
      return 'Enter a username and a password.';
    case 401:
      return 'Wrong username or password.';
    case 429:
      return `Too many failed sign-ins from your address. Try again in ${problem.options.headers?.['retry-after'] ?? 'a few'} seconds.`;
    default:
      return problem.status >= 500
        ? 'Signing in failed on the server; try again shortly.'
        : `Signing in failed: ${problem.detail}.`;
  }
}

function sendPage(reply: FastifyReply, status: number, body: string): FastifyReply {
  return reply
    .code(status)
    .header('content-security-policy', LOGIN_PAGE_CSP)
    .header('cache-control', 'no-store')
    .type(HTML_CONTENT_TYPE)
    .send(body);
}

/**
 * POST /api/v1/admin/login: ADMIN_USERNAME and ADMIN_PASSWORD for an admin
 * JWT, as JSON (answered with JSON) or as the form of GET /admin/login
 * (answered with a page). Failed tries are counted per client address
 * (request.ip, which honours TRUST_PROXY); once limited, even right
 * credentials get 429.
 */
export function registerAdminLogin(app: FastifyInstance, deps: AdminLoginDeps): void {
  // A scope of its own: only here are form bodies parsed, and errors of a
  // form post are answered with the page.
  void app.register(async (scope) => {
    scope.addContentTypeParser(FORM, { parseAs: 'string' }, (_request, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });
    scope.setErrorHandler((error: FastifyError, request, reply) => {
      const problem = loggedProblem(error, request);
      if (!isFormPost(request)) return sendProblem(request, reply, problem);
      for (const [name, value] of Object.entries(problem.options.headers ?? {})) {
        reply.header(name, value);
      }
      return sendPage(reply, problem.status, loginPage(LOGIN, pageMessage(problem)));
    });

    scope.get(
      LOGIN_PAGE,
      {
        schema: {
          tags: ['Admin'],
          summary: 'The admin sign-in page (HTML), a form posting to POST /api/v1/admin/login',
          response: { 200: html('The sign-in page') },
        },
      },
      async (_request, reply) => sendPage(reply, 200, loginPage(LOGIN)),
    );

    scope.post(
      LOGIN,
      {
        // Refused before the body is even read.
        onRequest: async (request) => {
          const decision = deps.limiter.check(request.ip);
          if (!decision.allowed) {
            request.log.warn({ client: request.ip }, 'admin login rate limited');
            throw new HttpProblem(
              429,
              `too many failed logins; try again in ${decision.retryAfterSeconds} s`,
              { headers: { 'retry-after': String(decision.retryAfterSeconds) } },
            );
          }
        },
        preValidation: requireBody,
        schema: {
          tags: ['Admin'],
          summary: 'Sign in: an admin JWT for ADMIN_USERNAME and ADMIN_PASSWORD',
          consumes: ['application/json', FORM],
          body: loginSchema,
          response: {
            200: {
              description: 'Signed in: the token (a page for a form post)',
              content: {
                'application/json': { schema: tokenSchema },
                'text/html': { schema: z.string() },
              },
            },
            400: problemResponse('Missing or invalid fields (a page for a form post)'),
            401: problemResponse('Wrong username or password (a page for a form post)'),
            415: problemResponse('Body missing, or neither JSON nor a form'),
            429: problemResponse('Too many failed logins from this address; see Retry-After'),
          },
        },
      },
      async (request, reply) => {
        // The route schema validated and parsed the body.
        const { username, password } = request.body as z.output<typeof loginSchema>;
        if (!deps.auth.credentialsMatch(username, password)) {
          deps.limiter.recordFailure(request.ip);
          request.log.warn({ client: request.ip }, 'admin login failed');
          throw new HttpProblem(401, 'wrong username or password', {
            headers: { 'www-authenticate': 'Bearer realm="togather"' },
          });
        }
        deps.limiter.recordSuccess(request.ip);
        const { token, expiresInSeconds } = await deps.auth.issueToken(username);
        request.log.info({ client: request.ip }, 'admin logged in');
        if (isFormPost(request)) return sendPage(reply, 200, signedInPage(token, expiresInSeconds));
        return reply
          .header('cache-control', 'no-store')
          .send({ access_token: token, token_type: 'Bearer', expires_in: expiresInSeconds });
      },
    );
    allowOnly(scope, LOGIN, ['POST']);
    allowOnly(scope, LOGIN_PAGE, ['GET']);
  });
}
