import type { ErrorAnswers } from './error-response.js';
import type { BodyWatch, EdgeRequest, EdgeResponse } from './exchange.js';

/**
 * How long a refused request's connection stays open at most while its
 * client is still sending the body nobody reads. Node closes a connection at
 * the end of a `Connection: close` answer, and closing a socket with unread
 * bytes resets it, which can take the answer with it before the client has
 * read it; waiting for the body to end (nginx's lingering close) lets the
 * client read the 413 first.
 */
const LINGER_MS = 3000;

/**
 * MAX_BODY_SIZE. A request that declares a longer body (Content-Length) is
 * answered 413 before anything reaches a slot. A body without a declared
 * length (chunked) is counted as it flows: the chunk that crosses the limit
 * is not forwarded, the slot's request is destroyed with its socket (so no
 * half-sent body stays on a pooled connection), and the client gets 413 if
 * no answer has started yet, else its connection is closed.
 */
export class BodyLimit implements BodyWatch {
  constructor(
    readonly maxBytes: number,
    private readonly errors: ErrorAnswers,
  ) {}

  /** Whether the request declares a body over the limit. */
  declaresTooMuch(req: EdgeRequest): boolean {
    const length = req.headers['content-length'];
    // Node's parser has checked it is digits; beyond 2^53 Number() is still larger than any limit.
    return length !== undefined && Number(length) > this.maxBytes;
  }

  /** Answers a request whose declared body is over the limit; nothing was sent to a slot. */
  refuse(req: EdgeRequest, res: EdgeResponse): void {
    req.bodyTooLarge = true;
    this.answer(req, res);
  }

  /**
   * Counts a body without a declared length. Called before the body is piped
   * to the slot, so that this listener sees each chunk before the pipe does.
   */
  watch(req: EdgeRequest): void {
    if (req.headers['transfer-encoding'] === undefined) return;
    req.bodyWatch = this;
    req.on('data', onBodyData);
  }

  exceeded(req: EdgeRequest): void {
    req.bodyTooLarge = true;
    // Stops the pipe before it writes the chunk that crossed the limit.
    req.unpipe();
    req.cancelUpstream();
    const res = req.response;
    if (res === null) return;
    if (res.headersSent || res.writableEnded) {
      // The answer is out, in part or whole: only closing the connection is left.
      req.socket.destroy();
      return;
    }
    this.answer(req, res);
  }

  private answer(req: EdgeRequest, res: EdgeResponse): void {
    res.shouldKeepAlive = false;
    this.errors.sendOpen(res, 413, 'payload_too_large', req.slot, req.requestId);
    lingerThenEnd(req, res);
  }
}

function onBodyData(this: EdgeRequest, chunk: Buffer): void {
  const watch = this.bodyWatch;
  if (watch === null || this.bodyTooLarge) return;
  this.bodyBytes += chunk.length;
  if (this.bodyBytes > watch.maxBytes) watch.exceeded(this);
}

/** Ends a refused answer (closing its connection) once the body has ended, or after LINGER_MS. */
function lingerThenEnd(req: EdgeRequest, res: EdgeResponse): void {
  const end = (): void => {
    clearTimeout(timer);
    if (!res.writableEnded && !res.destroyed) res.end();
  };
  const timer = setTimeout(end, LINGER_MS);
  timer.unref();
  res.once('close', end);
  if (req.readableEnded) {
    end();
    return;
  }
  req.once('end', end);
  // Reads and drops what the client still sends.
  req.resume();
}
