import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AdminAuth } from './auth.js';
import { allowOnly } from './http-methods.js';
import type { LoginLimiter } from './login-limiter.js';
import { HttpProblem, unsupportedMediaType, validationProblem } from './problem.js';

const LOGIN = '/api/v1/admin/login';

const loginSchema = z.strictObject(
  {
    username: z.string({ error: 'is required' }).min(1, 'must not be empty').max(200),
    password: z.string({ error: 'is required' }).min(1, 'must not be empty').max(1000),
  },
  { error: 'must be a JSON object' },
);

export interface AdminLoginDeps {
  auth: AdminAuth;
  limiter: LoginLimiter;
}

/**
 * POST /api/v1/admin/login: ADMIN_USERNAME and ADMIN_PASSWORD for an admin
 * JWT. Failed tries are counted per client address (request.ip, which
 * honours TRUST_PROXY); once limited, even right credentials get 429.
 */
export function registerAdminLogin(app: FastifyInstance, deps: AdminLoginDeps): void {
  app.post(
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
    },
    async (request, reply) => {
      if (request.body === undefined) throw unsupportedMediaType(request);
      const parsed = loginSchema.safeParse(request.body);
      if (!parsed.success) throw validationProblem(parsed.error, 'body');
      const { username, password } = parsed.data;
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
      return reply
        .header('cache-control', 'no-store')
        .send({ access_token: token, token_type: 'Bearer', expires_in: expiresInSeconds });
    },
  );
  allowOnly(app, LOGIN, ['POST']);
}
