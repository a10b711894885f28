import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { CompressedIntake } from './compression.js';
import type { H2Exchange, LinkedResponse } from './h2-exchange.js';
import { headerLines, takenByPool } from './slot-pass.js';
import { upstreamPath } from './stream-pass.js';

/**
 * One HTTP/2 stream's request on its slot's undici pool (Upstream.pool), the
 * way slot-pass.ts sends HTTP/1.1 requests: no ClientRequest, IncomingMessage
 * or agent bookkeeping per stream, which was a third of the HTTP/2 path's
 * CPU. What the pool does not take goes through `http.request`
 * (h2-forward.ts): WebSocket handshakes, https slots and slot URLs with a
 * path, bodies without a declared length (sent chunked), `Content-Length: 0`
 * on a method without a payload, and `Expect`.
 */

/** What the call reports to the forwarder that owns the exchange (Http2Forwarder). */
export interface H2SlotCallOwner {
  /**
   * The slot's answer head arrived: staged on the stream. Returns the
   * compressed body's encoder when the answer is compressed, null when the
   * body goes to the stream as it is, undefined when the head was refused
   * (the call is then aborted and the exchange answered).
   */
  slotHeadArrived(
    exchange: H2Exchange,
    status: number,
    headers: IncomingHttpHeaders,
  ): CompressedIntake | null | undefined;
  upstreamFailed(exchange: H2Exchange, error: NodeJS.ErrnoException): void;
  upstreamCut(exchange: H2Exchange): void;
}

/** Whether the exchange's request goes through the pool; its headers are the ones for the slot. */
export function poolTakes(
  exchange: H2Exchange,
  headers: OutgoingHttpHeaders,
  hasBody: boolean,
): boolean {
  if (exchange.webSocket || exchange.upstream.pool === null) return false;
  if (headers.expect !== undefined) return false;
  const length = headers['content-length'];
  if (hasBody && length === undefined) return false;
  return takenByPool(exchange.method, length === undefined ? undefined : String(length));
}

export class H2SlotCall implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private pendingAbort: Error | null = null;
  private started = false;
  private done = false;
  private encoder: Writable | null = null;

  private constructor(
    private readonly exchange: H2Exchange,
    private readonly owner: H2SlotCallOwner,
  ) {}

  /** Sends the exchange's request (its body from the client stream when it has one). */
  static send(
    exchange: H2Exchange,
    owner: H2SlotCallOwner,
    headers: OutgoingHttpHeaders,
    hasBody: boolean,
  ): H2SlotCall {
    const call = new H2SlotCall(exchange, owner);
    exchange.call = call;
    exchange.upstream.pool!.dispatch(
      {
        method: exchange.method,
        path: upstreamPath(exchange.url),
        headers: headerLines(headers),
        body: hasBody ? exchange.req : null,
        // Sent again by the forwarder only (once, when replayable), never by undici.
        idempotent: false,
      },
      call,
    );
    return call;
  }

  /** undici has the request on a connection (the slot may be working on it). */
  get sent(): boolean {
    return this.controller !== null;
  }

  abort(error: Error): void {
    if (this.done) return;
    if (this.controller === null) this.pendingAbort = error;
    else this.controller.abort(error);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.pendingAbort !== null) controller.abort(this.pendingAbort);
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    status: number,
    headers: IncomingHttpHeaders,
  ): void {
    // 1xx informational answers are not final ones: HTTP/2 gets the final answer only.
    if (status < 200) return;
    this.started = true;
    const staged = this.owner.slotHeadArrived(this.exchange, status, headers);
    if (staged === undefined) {
      this.done = true;
      controller.abort(new Error('slot answer refused'));
      return;
    }
    if (staged !== null) {
      this.encoder = staged.encoder;
      this.exchange.compressed = staged;
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const exchange = this.exchange;
    if (exchange.done) return;
    const encoder = this.encoder;
    if (encoder !== null) {
      if (encoder.destroyed) return;
      if (!encoder.write(chunk)) {
        controller.pause();
        encoder.once('drain', () => controller.resume());
      }
      return;
    }
    const res = exchange.res;
    if (res.writableEnded) return;
    exchange.bytes += chunk.length;
    if (!res.write(chunk)) {
      controller.pause();
      res.once('drain', resumeCall);
    }
  }

  onResponseEnd(): void {
    this.done = true;
    const exchange = this.exchange;
    if (exchange.done) return;
    exchange.ended = true;
    const encoder = this.encoder;
    if (encoder !== null) {
      // A compressed answer is ended by its encoder, once the last bytes are flushed.
      if (!encoder.destroyed) encoder.end();
      return;
    }
    if (!exchange.res.writableEnded) exchange.res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, error: Error): void {
    if (this.done) return;
    this.done = true;
    const exchange = this.exchange;
    // A retry replaced this call: only the current one speaks for the exchange.
    if (exchange.call !== this) return;
    if (this.started) this.owner.upstreamCut(exchange);
    else this.owner.upstreamFailed(exchange, error);
  }

  resume(): void {
    this.controller?.resume();
  }
}

function resumeCall(this: LinkedResponse): void {
  this.h2Exchange?.call?.resume();
}
