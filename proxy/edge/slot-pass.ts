import type { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { EdgeRequest, EdgeResponse, UpstreamCall } from './exchange.js';
import { upstreamPath, type WebPass } from './stream-pass.js';

/**
 * The web pass that sends a request to an http slot through the slot's
 * undici pool (Upstream.pool) instead of `http.request` and its agent: the
 * first pass of the data plane's http-proxy-3 servers (slot-proxies.ts puts
 * it ahead of stream-pass.ts with the library's public `before()`). undici's
 * client keeps no ClientRequest, IncomingMessage, socket listeners or agent
 * bookkeeping per request: about a quarter less CPU per proxied request.
 *
 * It reports as the Node pass does: a failure before the slot's answer
 * starts is the http-proxy-3 server's `error` event (forward.ts answers it,
 * or sends the request again after a stale pooled connection); the answer's
 * head goes to the sink, which stages it with the edge policy's edits
 * (security headers, compression) exactly as for the Node pass, and its body
 * into the client answer (or the sink's encoder), paused while the client
 * connection is full. Requests it does not take (no pool for the slot: https
 * or a path prefix; a chunked request body; `Content-Length: 0` on a method
 * without a payload) go on to the next pass.
 */

/** What the pass hands the slot's answer to (the Forwarder). */
export interface SlotAnswerSink {
  /**
   * The slot's answer head arrived: stage it on the client answer. Returns
   * the writable the body goes into when it is compressed, null when the
   * body goes into the client answer as it is.
   */
  slotAnswerStarted(
    req: EdgeRequest,
    res: EdgeResponse,
    status: number,
    message: string | undefined,
    headers: IncomingHttpHeaders,
  ): Writable | null;
  /** The slot's answer broke off after its head arrived. */
  upstreamAnswerCut(req: EdgeRequest, res: EdgeResponse): void;
}

export function createSlotPass(sink: SlotAnswerSink): WebPass {
  return (req, res, _options, _head, server) => {
    const pool = req.upstream?.pool;
    if (pool === null || pool === undefined || req.url === undefined) return false;
    const headers = req.headers;
    // A chunked request body stays chunked to the slot: undici would send a
    // body that has fully arrived with a Content-Length instead. Such bodies
    // are rare (and MAX_BODY_SIZE counts them as they flow): Node's
    // http.request (stream-pass.ts) forwards them.
    if (headers['transfer-encoding'] !== undefined) return false;
    const length = headers['content-length'];
    const method = req.method ?? 'GET';
    if (!takenByPool(method, length)) return false;
    const call = new SlotCall(req, res as EdgeResponse, server, sink);
    req.upstreamCall = call;
    const hasBody = length !== undefined && length !== '0';
    pool.dispatch(
      {
        method,
        path: upstreamPath(req.url),
        headers: headerLines(headers),
        body: hasBody ? req : null,
        // Sent again by forward.ts only (once, when replayable), never by undici.
        idempotent: false,
      },
      call,
    );
    return true;
  };
}

/**
 * Whether undici sends what the client sent: it leaves `Content-Length: 0`
 * out on methods without a payload (a DELETE), so those go the Node way and
 * the slot sees the header the client sent.
 */
export function takenByPool(method: string, contentLength: string | undefined): boolean {
  return contentLength !== '0' || PAYLOAD_METHODS[method] === true;
}

/** The methods undici sends `Content-Length: 0` for (it leaves the header out on the others). */
const PAYLOAD_METHODS: Readonly<Record<string, true>> = Object.assign(
  Object.create(null) as Record<string, true>,
  { PUT: true, POST: true, PATCH: true, QUERY: true, PROPFIND: true, PROPPATCH: true },
);

/** Headers for the slot as one list ([name, value, ...], in their order), as undici takes them. */
export function headerLines(headers: OutgoingHttpHeaders): string[] {
  const lines: string[] = [];
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (typeof value === 'string') lines.push(name, value);
    else if (typeof value === 'number') lines.push(name, String(value));
    else for (const item of value) lines.push(name, item);
  }
  return lines;
}

/**
 * One request on the slot's pool, as undici's dispatch handler: one object
 * per request (and per retry), its methods shared, no closure per request
 * (one for a compressed answer's encoder drain).
 */
class SlotCall implements Dispatcher.DispatchHandler, UpstreamCall {
  private controller: Dispatcher.DispatchController | null = null;
  /** Asked to abort before undici had started the request: done at its start. */
  private pendingAbort: Error | null = null;
  /** The slot's answer head arrived. */
  private started = false;
  private done = false;
  /** The compressed answer's encoder, which the body goes into instead of the client answer. */
  private encoder: Writable | null = null;

  constructor(
    private readonly req: EdgeRequest,
    private readonly res: EdgeResponse,
    private readonly server: EventEmitter,
    private readonly sink: SlotAnswerSink,
  ) {}

  get sent(): boolean {
    return this.controller !== null;
  }

  abort(error: Error): void {
    if (this.done) return;
    if (this.controller === null) this.pendingAbort = error;
    else this.controller.abort(error);
  }

  resume(): void {
    this.controller?.resume();
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.pendingAbort !== null) controller.abort(this.pendingAbort);
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    status: number,
    headers: IncomingHttpHeaders,
    message?: string,
  ): void {
    // 1xx informational answers (102, 103) are not passed on, as Node's client does not.
    if (status < 200) return;
    this.started = true;
    this.encoder = this.sink.slotAnswerStarted(this.req, this.res, status, message, headers);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const encoder = this.encoder;
    if (encoder !== null) {
      if (encoder.destroyed) return;
      if (!encoder.write(chunk)) {
        controller.pause();
        encoder.once('drain', () => controller.resume());
      }
      return;
    }
    const res = this.res;
    if (res.destroyed || res.writableEnded || res.proxyAnswered) return;
    if (!res.write(chunk)) {
      controller.pause();
      res.once('drain', resumeCall);
    }
  }

  onResponseEnd(): void {
    this.done = true;
    const encoder = this.encoder;
    if (encoder !== null) {
      if (!encoder.destroyed) encoder.end();
      return;
    }
    const res = this.res;
    if (!res.destroyed && !res.writableEnded && !res.proxyAnswered) res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, error: Error): void {
    this.done = true;
    const { req, res } = this;
    if (this.started) {
      // The client left (nothing to report) or the slot broke off mid-answer.
      if (!res.destroyed && !res.writableFinished) this.sink.upstreamAnswerCut(req, res);
      return;
    }
    this.server.emit('error', error, req, res, req.upstream?.target);
  }
}

function resumeCall(this: EdgeResponse): void {
  const call = this.req.upstreamCall;
  if (call instanceof SlotCall) call.resume();
}
