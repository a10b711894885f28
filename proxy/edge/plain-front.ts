import type { TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import type { EdgeRequest, EdgeResponse } from './exchange.js';

/**
 * What the public listeners do besides forwarding once TLS is on: the plain
 * listener answers some requests itself (ACME HTTP-01 challenges, the
 * redirect to HTTPS), and answers over TLS carry Strict-Transport-Security.
 * The forwarder asks it at two points of every plain request: `challenge`
 * before any check, `redirect` once the request is known to be well formed
 * (its Host is valid). Each returns true when it answered the request.
 * Answers written here carry X-Togather-Slot and X-Request-Id like every
 * answer of the proxy, and are counted and logged by the forwarder.
 */
export interface EdgeFront {
  /** The Strict-Transport-Security value for TLS answers, or null (HSTS=off). */
  readonly hsts: string | null;
  challenge(req: EdgeRequest, res: EdgeResponse): boolean;
  redirect(req: EdgeRequest, res: EdgeResponse): boolean;
}

/** A client connection of the TLS listener (HTTP/1.1 over TLS, or an HTTP/2 session's socket). */
export function isTlsSocket(socket: Socket): boolean {
  return (socket as TLSSocket).encrypted === true;
}
