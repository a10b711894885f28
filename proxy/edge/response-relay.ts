import type { IncomingMessage } from 'node:http';
import type { EdgeResponse } from './exchange.js';

/**
 * A slot's answer body into the client answer, as a pipe would (the slot is
 * paused while the client connection is full, the answer ends with the
 * slot's), with two shared listeners instead of a pipe's eight listeners and
 * its clean-up per request. Nothing is written to an answer that is already
 * ended or destroyed (the client left: the upstream request is destroyed
 * then) or that the proxy answers by itself.
 */

/** A slot's answer, linked back to the client answer it is piped into. */
interface UpstreamResponse extends IncomingMessage {
  edgeResponse?: EdgeResponse;
}

/**
 * Links the slot's answer to the client answer: when it breaks off before
 * its end, the exchange's observer cuts the client answer (upstreamAnswerCut).
 */
export function linkUpstreamAnswer(proxyRes: IncomingMessage, res: EdgeResponse): void {
  (proxyRes as UpstreamResponse).edgeResponse = res;
  proxyRes.on('close', onUpstreamResponseClose);
}

/** Streams a linked slot answer's body into its client answer as it is. */
export function relayBody(proxyRes: IncomingMessage, res: EdgeResponse): void {
  proxyRes.on('data', onUpstreamData);
  proxyRes.on('end', onUpstreamEnd);
  if (res.writableNeedDrain) waitForDrain(proxyRes, res);
}

function onUpstreamData(this: UpstreamResponse, chunk: Buffer): void {
  const res = this.edgeResponse;
  if (res === undefined || res.destroyed || res.writableEnded || res.proxyAnswered) return;
  if (!res.write(chunk)) waitForDrain(this, res);
}

function onUpstreamEnd(this: UpstreamResponse): void {
  const res = this.edgeResponse;
  if (res !== undefined && !res.destroyed && !res.writableEnded && !res.proxyAnswered) res.end();
}

function waitForDrain(proxyRes: IncomingMessage, res: EdgeResponse): void {
  proxyRes.pause();
  res.once('drain', () => proxyRes.resume());
}

function onUpstreamResponseClose(this: UpstreamResponse): void {
  if (this.complete) return;
  const res = this.edgeResponse;
  if (res === undefined || res.destroyed || res.writableFinished) return;
  res.req.observer?.upstreamAnswerCut(res.req, res);
}
