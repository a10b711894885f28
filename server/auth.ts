import type { FastifyReply, FastifyRequest } from 'fastify';
import { SignJWT, errors as joseErrors, jwtVerify } from 'jose';
import { bearerToken, secretsEqual } from '../common/secrets.js';
import type { AuthSettings } from './config.js';
import { HttpProblem } from './problem.js';

export type Principal = { kind: 'api_key' } | { kind: 'jwt'; subject: string };
export type AuthFailure = 'missing' | 'invalid' | 'expired';

export interface AdminAuth {
  /** Who the Authorization header proves to be, or why it proves nothing. */
  verify(authorization: string | undefined): Promise<Principal | AuthFailure>;
  /** Username and password both compared in constant time, always both. */
  credentialsMatch(username: string, password: string): boolean;
  issueToken(username: string): Promise<{ token: string; expiresInSeconds: number }>;
}

const ISSUER = 'togather';
const AUDIENCE = 'togather-admin';
const ALGORITHM = 'HS256';

/**
 * Admin access to write routes: the ADMIN_API_KEY as a Bearer token, or a
 * short-lived JWT from POST /api/v1/admin/login signed with JWT_SECRET.
 */
export function createAdminAuth(settings: AuthSettings, now: () => number = Date.now): AdminAuth {
  const key = new TextEncoder().encode(settings.jwtSecret);
  return {
    async verify(authorization) {
      const token = bearerToken(authorization);
      if (token === undefined) return 'missing';
      if (secretsEqual(token, settings.adminApiKey)) return { kind: 'api_key' };
      if (token.split('.').length !== 3) return 'invalid';
      try {
        const { payload } = await jwtVerify(token, key, {
          issuer: ISSUER,
          audience: AUDIENCE,
          algorithms: [ALGORITHM],
          currentDate: new Date(now()),
        });
        if (payload.role !== 'admin' || typeof payload.sub !== 'string') return 'invalid';
        return { kind: 'jwt', subject: payload.sub };
      } catch (error) {
        return error instanceof joseErrors.JWTExpired ? 'expired' : 'invalid';
      }
    },
    credentialsMatch(username, password) {
      const userOk = secretsEqual(username, settings.adminUsername);
      const passwordOk = secretsEqual(password, settings.adminPassword);
      return userOk && passwordOk;
    },
    async issueToken(username) {
      const issuedAt = Math.floor(now() / 1000);
      const expiresInSeconds = Math.max(1, Math.round(settings.jwtTtlMs / 1000));
      const token = await new SignJWT({ role: 'admin' })
        .setProtectedHeader({ alg: ALGORITHM })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setSubject(username)
        .setIssuedAt(issuedAt)
        .setExpirationTime(issuedAt + expiresInSeconds)
        .sign(key);
      return { token, expiresInSeconds };
    },
  };
}

const CHALLENGE = 'Bearer realm="togather"';

const FAILURES: Record<AuthFailure, { detail: string; challenge: string }> = {
  missing: {
    detail: 'missing credentials: send Authorization: Bearer <admin API key or token>',
    challenge: CHALLENGE,
  },
  invalid: {
    detail: 'invalid admin API key or token',
    challenge: `${CHALLENGE}, error="invalid_token"`,
  },
  expired: {
    detail: 'token expired; log in again',
    challenge: `${CHALLENGE}, error="invalid_token", error_description="token expired"`,
  },
};

/** A preHandler that lets only admins through (401 with a Bearer challenge otherwise). */
export function requireAdmin(auth: AdminAuth) {
  return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const result = await auth.verify(request.headers.authorization);
    if (typeof result === 'string') {
      const failure = FAILURES[result];
      throw new HttpProblem(401, failure.detail, {
        headers: { 'www-authenticate': failure.challenge },
      });
    }
    request.log.debug({ principal: result.kind }, 'admin request');
  };
}
