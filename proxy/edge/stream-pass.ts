import {
  request,
  type Agent,
  type ClientRequest,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import type { Socket } from 'node:net';
import type { ServerOptions } from 'http-proxy-3';
import type { EdgeRequest } from './exchange.js';
import type { EdgeProxyServer } from './forward.js';

/**
 * The web pass the data plane puts before http-proxy-3's own `stream` pass
 * (ProxyServer.before, its public API): it sends the request to the slot the
 * way `stream` does for this proxy's options, and emits the same events
 * (`proxyReq` once the upstream request has a socket, `proxyRes`, `error`),
 * but without the per-request work `stream` does for options this proxy
 * never sets: no options object rebuilt from the target URL, the headers
 * handed to Node as one list instead of one setHeader each, no environment
 * read. Targets it does not cover (https, or a slot URL with a path prefix,
 * which `stream` joins with the request path) go on to `stream` unchanged.
 */

/** A web pass as http-proxy-3 calls it; true: handled, the passes after it do not run. */
export type WebPass = (
  req: EdgeRequest,
  res: ServerResponse,
  options: ServerOptions,
  head: Buffer | undefined,
  server: EdgeProxyServer,
) => boolean;

/** Where the upstream requests of one target go, worked out once. */
interface UpstreamAddress {
  hostname: string;
  port: number;
  /** What Node would send as Host for a request that has none (HTTP/1.0). */
  hostHeader: string;
}

const addresses = new WeakMap<URL, UpstreamAddress | null>();

/** The address of an http: target without a path; null for anything `stream` must handle. */
function addressOf(target: unknown): UpstreamAddress | null {
  if (!(target instanceof URL)) return null;
  let address = addresses.get(target);
  if (address === undefined) {
    address = null;
    if (target.protocol === 'http:' && target.pathname === '/' && target.search === '') {
      const bracketed = target.hostname.startsWith('[');
      const hostname = bracketed ? target.hostname.slice(1, -1) : target.hostname;
      const port = Number(target.port) || 80;
      const host = hostname.includes(':') ? `[${hostname}]` : hostname;
      address = { hostname, port, hostHeader: port === 80 ? host : `${host}:${port}` };
    }
    addresses.set(target, address);
  }
  return address;
}

/**
 * The request target sent upstream, as `stream` builds it for a target
 * without a path (its urlJoin('/', url)): the same, except that an empty
 * query (`/path?`) loses its `?`.
 */
export function upstreamPath(url: string): string {
  const query = url.indexOf('?');
  return query !== -1 && query === url.length - 1 ? url.slice(0, query) : url;
}

/**
 * The client's headers as one list for Node ([name, value, ...], in their
 * order), plus the Host Node would add to a request without one.
 */
function headerLines(req: IncomingMessage, address: UpstreamAddress): string[] {
  const lines: string[] = [];
  const headers = req.headers;
  let host = false;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (name === 'host') host = true;
    if (typeof value === 'string') lines.push(name, value);
    else for (const item of value) lines.push(name, item);
  }
  if (!host) lines.push('Host', address.hostHeader);
  return lines;
}

/** An upstream request of this pass, linked back to the client request it serves. */
interface PassRequest extends ClientRequest {
  edgeRequest: EdgeRequest;
}

export function createStreamPass(): WebPass {
  return streamPass;
}

/**
 * The pass itself. What its event handlers need lives on the two requests
 * (EdgeRequest's pass fields, PassRequest.edgeRequest), so the handlers are
 * shared functions rather than closures made per request. A request sent
 * again after a stale pooled socket (forward.ts) comes through here twice:
 * the client-side listeners are added on its first pass only.
 */
const streamPass: WebPass = (req, res, options, _head, server) => {
  const address = options.prependPath === false ? addressOf(options.target) : null;
  if (address === null || req.url === undefined) return false;
  const proxyReq = request({
    host: address.hostname,
    hostname: address.hostname,
    port: address.port,
    method: req.method,
    path: upstreamPath(req.url),
    headers: headerLines(req, address),
    // The slot's keep-alive agent, passed on as `stream` does.
    agent: options.agent as Agent | undefined,
  }) as PassRequest;
  proxyReq.edgeRequest = req;
  const firstPass = req.passRequest === null;
  req.passRequest = proxyReq;
  req.passServer = server;
  req.passOptions = options;
  // Array headers leave nothing for getHeader('expect'), which `stream` checks; Expect never reaches a slot.
  proxyReq.on('socket', onUpstreamSocket);
  if (firstPass) {
    res.on('close', onClientClose);
    req.on('error', onClientRequestError);
  }
  proxyReq.on('error', onUpstreamRequestError);
  (options.buffer ?? req).pipe(proxyReq);
  proxyReq.on('response', onUpstreamResponse);
  return true;
};

function onUpstreamSocket(this: PassRequest, socket: Socket): void {
  const req = this.edgeRequest;
  req.passServer?.emit('proxyReq', this, req, req.response, req.passOptions, socket);
}

/** The client left: nothing may keep running on the slot for it. */
function onClientClose(this: ServerResponse): void {
  const proxyReq = (this.req as EdgeRequest).passRequest;
  if (!this.writableFinished && proxyReq !== null) proxyReq.destroy();
}

function onClientRequestError(this: EdgeRequest, error: NodeJS.ErrnoException): void {
  reportError(this, error);
}

function onUpstreamRequestError(this: PassRequest, error: NodeJS.ErrnoException): void {
  reportError(this.edgeRequest, error);
}

function reportError(req: EdgeRequest, error: NodeJS.ErrnoException): void {
  // A reset after the client is gone: `stream` reports it as `econnreset` (nobody listens), not `error`.
  if (req.socket.destroyed && error.code === 'ECONNRESET') {
    req.passRequest?.destroy();
    return;
  }
  req.passServer?.emit('error', error, req, req.response, req.passOptions?.target as URL);
}

function onUpstreamResponse(this: PassRequest, proxyRes: IncomingMessage): void {
  const req = this.edgeRequest;
  // http-proxy-3 types the slot's answer with the listener's request class; like
  // `stream`, this hands over Node's plain IncomingMessage.
  req.passServer?.emit('proxyRes', proxyRes as EdgeRequest, req, req.response);
}
