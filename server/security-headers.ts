import type { FastifyInstance } from 'fastify';

/**
 * For JSON answers: nothing may load or run from them, and only pages of
 * the same origin may frame them. Pages of the app set their own
 * Content-Security-Policy (the login page).
 */
export const API_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'self'";

const HEADERS: ReadonlyArray<readonly [string, string]> = [
  ['x-frame-options', 'SAMEORIGIN'],
  ['x-content-type-options', 'nosniff'],
  ['referrer-policy', 'strict-origin-when-cross-origin'],
  ['content-security-policy', API_CONTENT_SECURITY_POLICY],
];

/**
 * The security headers the edge set in front of the app before (nginx), on
 * every answer of the app itself, so a slot reached directly (its own port)
 * is as safe as one behind the proxy. A header a route set is kept.
 */
export function registerSecurityHeaders(app: FastifyInstance): void {
  app.addHook('onSend', async (_request, reply, payload) => {
    for (const [name, value] of HEADERS) {
      if (!reply.hasHeader(name)) reply.header(name, value);
    }
    return payload;
  });
}
