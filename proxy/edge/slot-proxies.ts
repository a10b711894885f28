import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Stream } from 'node:stream';
import { createProxyServer, type ServerOptions } from 'http-proxy-3';
import type { EdgeProxyServer, EdgeRequest, EdgeResponse } from './exchange.js';
import type { Slot } from '../state/slot-state.js';
import { createSlotPass, type SlotAnswerSink } from './slot-pass.js';
import { createStreamPass, type WebPass } from './stream-pass.js';
import type { Upstream } from './upstream.js';

/** What the forwarder listens to on every server of SlotProxies (the undici pass's answers too). */
export interface SlotProxyHandlers extends SlotAnswerSink {
  onProxyReq(proxyReq: ClientRequest, req: EdgeRequest): void;
  onProxyRes(proxyRes: IncomingMessage, req: EdgeRequest, res: ServerResponse): void;
  onError(error: Error, req: EdgeRequest, target: ServerResponse | Socket): void;
}

/**
 * The first of http-proxy-3's own web passes (2.0.1: deleteLength, timeout,
 * XHeaders, stream). The data plane's passes go before it through the
 * library's public `before()`: the undici pool's (slot-pass.ts), which
 * takes the requests it can, then Node's (stream-pass.ts), which handles
 * every other request, so none of the library's own runs; a version without this pass fails at start-up ("No such pass")
 * instead of changing behaviour silently.
 */
const FIRST_LIBRARY_PASS = 'deleteLength';

/**
 * The http-proxy-3 servers requests go through: one per slot for requests
 * with a body and one for requests without, each with its options as its
 * own, so web() is called without options, which http-proxy-3 would
 * otherwise merge into its own into a new object per request (an object V8
 * builds slowly and every pass then reads slowly).
 */
export class SlotProxies {
  /** http-proxy-3 options per slot, built once (WebSocket handshakes use them too). */
  private readonly slotOptions: Readonly<Record<Slot, ServerOptions>>;
  private readonly servers: Readonly<
    Record<'body' | 'bodyless', Readonly<Record<Slot, EdgeProxyServer>>>
  >;

  constructor(upstreams: Readonly<Record<Slot, Upstream>>, handlers: SlotProxyHandlers) {
    const slotPass = createSlotPass(handlers);
    this.slotOptions = {
      blue: upstreamOptions(upstreams.blue),
      green: upstreamOptions(upstreams.green),
    };
    const { blue, green } = this.slotOptions;
    this.servers = {
      body: {
        blue: webProxy(blue, slotPass, handlers),
        green: webProxy(green, slotPass, handlers),
      },
      bodyless: {
        blue: webProxy({ ...blue, buffer: NO_BODY }, slotPass, handlers),
        green: webProxy({ ...green, buffer: NO_BODY }, slotPass, handlers),
      },
    };
  }

  /** http-proxy-3 options for `slot`. */
  optionsFor(slot: Slot): ServerOptions {
    return this.slotOptions[slot];
  }

  /** Sends the request to its slot (req.slot). */
  web(req: EdgeRequest, res: EdgeResponse): void {
    this.servers[hasNoBody(req) ? 'bodyless' : 'body'][req.slot].web(req, res);
  }
}

function webProxy(
  options: ServerOptions,
  slotPass: WebPass,
  handlers: SlotProxyHandlers,
): EdgeProxyServer {
  const proxy = createProxyServer<typeof EdgeRequest>(options);
  // Each goes in just before the library's first pass: the undici pool's first, then Node's.
  proxy.before('web', FIRST_LIBRARY_PASS, slotPass);
  proxy.before('web', FIRST_LIBRARY_PASS, createStreamPass());
  proxy.on('proxyReq', handlers.onProxyReq);
  proxy.on('proxyRes', handlers.onProxyRes);
  proxy.on('error', handlers.onError);
  return proxy;
}

function upstreamOptions(upstream: Upstream): ServerOptions {
  const target = upstream.target;
  return {
    target,
    agent: upstream.agent,
    // For WebSocket handshakes (http-proxy-3's ws passes; requests take the
    // data plane's pass): the request target as received, not re-parsed and
    // normalised, and a slot URL's path put in front of it.
    toProxy: true,
    prependPath: target.pathname !== '/' || target.search !== '',
    // The forwarder writes the answer (the library's header passes would copy one header at a time).
    selfHandleResponse: true,
  };
}

/**
 * The request body piped into the upstream request when the client's
 * request has none: it ends the upstream request at once, with the same
 * head and framing as piping the empty request, without a pipe's listeners
 * and ticks (Node discards the unread empty request when the answer ends,
 * as it does for any handler that does not read it).
 */
class NoBody extends Stream {
  override pipe<T extends NodeJS.WritableStream>(destination: T): T {
    destination.end();
    return destination;
  }
}
const NO_BODY = new NoBody();

/** RFC 9112 §6.3: a request without Content-Length or Transfer-Encoding has no body. */
function hasNoBody(req: IncomingMessage): boolean {
  const headers = req.headers;
  if (headers['transfer-encoding'] !== undefined) return false;
  const length = headers['content-length'];
  return length === undefined || length === '0';
}
