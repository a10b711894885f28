import {
  request as httpRequest,
  type Agent,
  type ClientRequest,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { isIP, type Socket } from 'node:net';
import type { ServerOptions } from 'http-proxy-3';
import type { EdgeProxyServer, EdgeRequest } from './exchange.js';

/**
 * The data plane's web pass, the first of the pass list of its http-proxy-3
 * servers (inserted with ProxyServer.before, the library's public API; see
 * slot-proxies.ts). It forwards every request to its slot, http or https,
 * with or without a path prefix in the slot URL, the way http-proxy-3's
 * `stream` pass does for this proxy's options, and emits the same events
 * (`proxyReq` once the upstream request has a socket, `proxyRes`, `error`);
 * it always answers true, so none of the library's own passes runs (its
 * `deleteLength` would turn a chunked DELETE or OPTIONS body into
 * `Content-Length: 0` followed by the body bytes, a request-smuggling hazard
 * on a keep-alive slot connection; timeout and XHeaders are replaced by the
 * agent's timeout and headers.ts). Compared with `stream` it spares the
 * per-request work for options this proxy never sets: no options object
 * rebuilt from the target URL, the headers handed to Node as one list
 * instead of one setHeader each, no environment read.
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
  /** node:http's or node:https's request(). */
  request: (options: RequestOptions) => ClientRequest;
  hostname: string;
  port: number;
  /** What Node would send as Host for a request that has none (HTTP/1.0). */
  hostHeader: string;
  /**
   * The TLS server name (SNI and the certificate's name check) of an https
   * slot: its own host name, or '' (none) for an IP address. Set here because
   * Node would otherwise take it from the request's Host, the client's name
   * for the site rather than the slot's.
   */
  servername: string | undefined;
  /** The slot URL's path and query when it has one: put in front of every request target. */
  prefix: { path: string; query: string } | null;
}

const addresses = new WeakMap<URL, UpstreamAddress | null>();

/** The address of an http: or https: target; null for anything else. */
function addressOf(target: unknown): UpstreamAddress | null {
  if (!(target instanceof URL)) return null;
  let address = addresses.get(target);
  if (address === undefined) {
    address = null;
    const secure = target.protocol === 'https:';
    if (secure || target.protocol === 'http:') {
      const bracketed = target.hostname.startsWith('[');
      const hostname = bracketed ? target.hostname.slice(1, -1) : target.hostname;
      const defaultPort = secure ? 443 : 80;
      const port = Number(target.port) || defaultPort;
      const host = hostname.includes(':') ? `[${hostname}]` : hostname;
      const hasPrefix = target.pathname !== '/' || target.search !== '';
      address = {
        request: secure ? httpsRequest : httpRequest,
        hostname,
        port,
        hostHeader: port === defaultPort ? host : `${host}:${port}`,
        servername: secure ? (isIP(hostname) === 0 ? hostname : '') : undefined,
        prefix: hasPrefix ? { path: target.pathname, query: target.search.slice(1) } : null,
      };
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
 * The request target sent to a slot URL with a path (and maybe a query), as
 * `stream` joins them (its urlJoin(prefix, url)): the paths with one slash
 * between them, the slot URL's query and the request's joined with `&`, an
 * empty query dropped.
 */
export function prefixedPath(prefix: { path: string; query: string }, url: string): string {
  const mark = url.indexOf('?');
  const path = mark === -1 ? url : url.slice(0, mark);
  const query = mark === -1 ? '' : url.slice(mark + 1);
  let joined = prefix.path;
  if (path !== '') {
    const slashes = (joined.endsWith('/') ? 1 : 0) + (path.startsWith('/') ? 1 : 0);
    joined =
      slashes === 2 ? joined + path.slice(1) : slashes === 1 ? joined + path : `${joined}/${path}`;
  }
  const queries =
    prefix.query !== '' && query !== '' ? `${prefix.query}&${query}` : prefix.query || query;
  return queries === '' ? joined : `${joined}?${queries}`;
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
  const address = addressOf(options.target);
  const url = req.url;
  if (address === null || url === undefined) {
    // Neither can happen (slot URLs are http(s) URLs, a request has a target): refused, not passed on.
    server.emit('error', new Error('no http(s) slot target for this request'), req, res);
    return true;
  }
  const proxyReq = address.request({
    host: address.hostname,
    hostname: address.hostname,
    port: address.port,
    method: req.method,
    path: address.prefix === null ? upstreamPath(url) : prefixedPath(address.prefix, url),
    headers: headerLines(req, address),
    servername: address.servername,
    // The slot's keep-alive agent (an https.Agent for an https slot), passed on as `stream` does.
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
