import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

/**
 * Which headers cross the proxy, in both directions: hop-by-hop headers
 * (RFC 9110 §7.6.1) stop here, the X-Forwarded-* chain is kept or replaced
 * (TRUST_PROXY), and the headers the proxy owns (X-Request-Id,
 * X-Togather-Slot, X-Forwarded-*) are never taken from the wrong side.
 */

/** Set by the proxy on every forwarded request; a Connection token never removes them. */
const PROXY_REQUEST_HEADERS = new Set([
  'x-request-id',
  'x-real-ip',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-port',
]);

/** Framing and routing headers a client's Connection token must not remove either. */
const PROTECTED_REQUEST_HEADERS = new Set([
  ...PROXY_REQUEST_HEADERS,
  'host',
  'content-length',
  'transfer-encoding',
]);

/**
 * Removed from every forwarded request. Transfer-Encoding is not among them:
 * Node has already decoded the client's chunks and re-frames the body for the
 * slot from this header, so dropping it would send a body without framing.
 * Expect is answered by this proxy (100 Continue) and not passed on.
 */
const REQUEST_HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'upgrade',
  'proxy-authorization',
  'expect',
  // The slot that serves a request is the proxy's to say, never the client's.
  'x-togather-slot',
] as const;

/**
 * Never copied from a slot's answer to the client: hop-by-hop headers (Node
 * writes its own Connection, Keep-Alive and Transfer-Encoding for the client
 * connection) and the two headers the proxy sets itself.
 */
export const DROPPED_RESPONSE_HEADERS: Readonly<Record<string, true>> = Object.assign(
  Object.create(null) as Record<string, true>,
  {
    connection: true,
    'keep-alive': true,
    'proxy-connection': true,
    'transfer-encoding': true,
    te: true,
    trailer: true,
    upgrade: true,
    'proxy-authenticate': true,
    'x-togather-slot': true,
    'x-request-id': true,
  },
);

/**
 * The head of a slot's answer as the client gets it, as header lines
 * ([name, value, ...], names lower-cased as Node parsed them): the proxy's
 * own X-Togather-Slot and X-Request-Id first, then every header of the slot
 * except the dropped ones (DROPPED_RESPONSE_HEADERS, or a larger set the
 * security headers ask for) and those its Connection header names.
 */
export function responseHeaderLines(
  slot: string,
  requestId: string,
  headers: IncomingHttpHeaders,
  connectionTokens: readonly string[] | null,
  dropped: Readonly<Record<string, true>> = DROPPED_RESPONSE_HEADERS,
): string[] {
  const lines = ['x-togather-slot', slot, 'x-request-id', requestId];
  for (const name in headers) {
    if (dropped[name] === true) continue;
    if (connectionTokens !== null && connectionTokens.includes(name)) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (typeof value === 'string') lines.push(name, value);
    else for (const item of value) lines.push(name, item);
  }
  return lines;
}

/** The lower-cased tokens of a Connection header, or null when there are none beyond close/keep-alive. */
export function connectionTokens(value: string | string[] | undefined): string[] | null {
  if (value === undefined) return null;
  const text = Array.isArray(value) ? value.join(',') : value;
  if (text === 'keep-alive' || text === 'close' || text === 'Keep-Alive' || text === 'Close') {
    return null;
  }
  const tokens: string[] = [];
  for (const raw of text.split(',')) {
    const token = raw.trim().toLowerCase();
    if (token !== '' && token !== 'close' && token !== 'keep-alive') tokens.push(token);
  }
  return tokens.length === 0 ? null : tokens;
}

/** RFC 9112 §3.2: uri-host [":" port]; an IP literal, or reg-name characters. */
const VALID_HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?$/;

/** Whether a Host (or HTTP/2 :authority) value is a valid uri-host [":" port]. */
export function isValidHost(value: string): boolean {
  return VALID_HOST.test(value);
}

export type HostHeaderProblem =
  'missing_host_header' | 'duplicate_host_header' | 'invalid_host_header';

/**
 * What is wrong with a request's Host (RFC 9112 §3.2: 400 for an HTTP/1.1
 * request without one, with more than one, or with an invalid value), or
 * null. Node keeps only the first of several Host lines in req.headers, so
 * without this check the slot would route on a Host that a cache or another
 * hop in front may have read differently.
 */
export function hostHeaderProblem(req: IncomingMessage): HostHeaderProblem | null {
  const host = req.headers.host;
  if (host === undefined) {
    return req.httpVersionMajor === 1 && req.httpVersionMinor === 1 ? 'missing_host_header' : null;
  }
  if (!VALID_HOST.test(host)) return 'invalid_host_header';
  const raw = req.rawHeaders;
  let seen = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host' && ++seen > 1) {
      return 'duplicate_host_header';
    }
  }
  return null;
}

/** The client's address as the slot should see it (IPv4-mapped IPv6 written as IPv4). */
export function clientAddress(socket: Socket): string {
  const address = socket.remoteAddress ?? '';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

export interface RequestHeaderContext {
  requestId: string;
  /** Keep an incoming X-Forwarded-* chain (the proxy sits behind a trusted load balancer). */
  trustProxy: boolean;
  /** A WebSocket handshake: Connection: Upgrade and Upgrade are passed on. */
  upgrade: boolean;
}

/**
 * Rewrites the client's request headers, in place, into the headers sent to
 * the slot (http-proxy-3 copies `req.headers` when it builds the upstream
 * request): X-Request-Id, X-Real-IP (the client socket's address, replacing
 * any value the client sent) and the X-Forwarded-* chain.
 */
export function prepareRequestHeaders(
  headers: IncomingHttpHeaders,
  socket: Socket,
  context: RequestHeaderContext,
): void {
  const upgradeTo = headers.upgrade;
  const tokens = connectionTokens(headers.connection);
  if (tokens !== null) {
    for (const token of tokens) {
      if (!PROTECTED_REQUEST_HEADERS.has(token)) delete headers[token];
    }
  }
  for (const name of REQUEST_HOP_BY_HOP) {
    if (headers[name] !== undefined) delete headers[name];
  }
  if (context.upgrade && upgradeTo !== undefined) {
    headers.connection = 'Upgrade';
    headers.upgrade = upgradeTo;
  }

  headers['x-request-id'] = context.requestId;

  const address = clientAddress(socket);
  // The socket's peer, whatever the client claims (nginx's `proxy_set_header X-Real-IP $remote_addr`).
  headers['x-real-ip'] = address;
  const host = headers.host;
  const port = String(socket.localPort ?? '');
  // The TLS listener's connections (HTTP/1.1 over TLS, HTTP/2) came in over https.
  const proto = (socket as TLSSocket).encrypted === true ? 'https' : 'http';
  if (context.trustProxy) {
    const chain = headers['x-forwarded-for'];
    headers['x-forwarded-for'] = chain ? `${joined(chain)}, ${address}` : address;
    if (!headers['x-forwarded-proto']) headers['x-forwarded-proto'] = proto;
    if (!headers['x-forwarded-host']) setOrDelete(headers, 'x-forwarded-host', host);
    if (!headers['x-forwarded-port']) headers['x-forwarded-port'] = port;
  } else {
    headers['x-forwarded-for'] = address;
    headers['x-forwarded-proto'] = proto;
    setOrDelete(headers, 'x-forwarded-host', host);
    headers['x-forwarded-port'] = port;
  }
}

function joined(value: string | string[]): string {
  return Array.isArray(value) ? value.join(', ') : value;
}

function setOrDelete(headers: IncomingHttpHeaders, name: string, value: string | undefined): void {
  if (value === undefined) delete headers[name];
  else headers[name] = value;
}
