import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify';
import { HttpProblem, sendProblem } from './problem.js';

const STANDARD_METHODS: readonly HTTPMethods[] = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
  'OPTIONS',
];

/**
 * Completes a path's routes: OPTIONS answers 204 with `Allow`, every other
 * standard method not routed answers 405 with `Allow` (instead of Fastify's
 * 404). GET implies HEAD, which Fastify routes by itself.
 */
export function allowOnly(app: FastifyInstance, url: string, routed: readonly HTTPMethods[]): void {
  const allowed = new Set<HTTPMethods>(routed);
  if (allowed.has('GET')) allowed.add('HEAD');
  allowed.add('OPTIONS');
  const allow = STANDARD_METHODS.filter((m) => allowed.has(m)).join(', ');
  if (!routed.includes('OPTIONS')) {
    // Hidden from the OpenAPI document: they complete the routes it lists.
    app.options(url, { schema: { hide: true } }, (_request, reply) =>
      reply.code(204).header('allow', allow).send(),
    );
  }
  const rest = STANDARD_METHODS.filter((m) => !allowed.has(m));
  if (rest.length === 0) return;
  const reject = async (request: FastifyRequest, reply: FastifyReply) =>
    sendProblem(
      request,
      reply,
      new HttpProblem(405, `${request.method} is not allowed here; allowed: ${allow}`, {
        headers: { allow },
      }),
    );
  // Answered in onRequest, before any body is read: a wrong method is 405
  // whatever its body (no 413 or 415 first).
  app.route({ method: rest, url, schema: { hide: true }, onRequest: reject, handler: reject });
}
