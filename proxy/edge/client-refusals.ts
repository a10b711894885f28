import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { newRequestId, requestIdFrom } from '../../common/request-id.js';
import { EdgeHandler, type EdgeContext } from './edge-handler.js';
import type { ErrorAnswers } from './error-response.js';
import type { EdgeRequest, EdgeResponse } from './exchange.js';
import { clientAddress } from './headers.js';

export interface ClientRefusalsOptions extends EdgeContext {
  errors: ErrorAnswers;
}

/**
 * What the public listener refuses before a request becomes an exchange
 * with a slot: bytes Node cannot parse or that come too slowly
 * ('clientError'), an Expect other than 100-continue ('checkExpectation') and
 * CONNECT ('connect'), each answered with the proxy's JSON error, tagged
 * with the active slot, and counted.
 */
export class ClientRefusals extends EdgeHandler {
  private readonly errors: ErrorAnswers;

  constructor(options: ClientRefusalsOptions) {
    super(options);
    this.errors = options.errors;
  }

  /**
   * The public listener's 'clientError' handler: requests Node could not
   * parse, headers over MAX_HEADER_SIZE (431), header or request timeouts
   * (408). Answered like Node would, plus X-Togather-Slot and a JSON body.
   */
  readonly onClientError = (error: NodeJS.ErrnoException, stream: Duplex): void => {
    // The public listener is a net-based http.Server: its client streams are net.Sockets.
    const socket = stream as Socket;
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const pending = pendingAnswer(socket);
    if (pending !== null && pending.req.complete && error.code?.startsWith('HPE_') === true) {
      // The bad bytes follow a complete request whose answer is still on its
      // way: that answer goes first, else the client would read this error as
      // the answer to a request the slot did serve. Node parses nothing more
      // on this connection, so once the answers end only the error is left.
      pending.once('close', () => setImmediate(() => this.onClientError(error, socket)));
      return;
    }
    if (pending?.headersSent === true) {
      socket.destroy();
      return;
    }
    const [status, code] = clientErrorAnswer(error);
    const slot = this.registry.current.active;
    const requestId = newRequestId();
    socket.write(this.errors.raw(status, code, slot, requestId));
    socket.destroySoon();
    this.metrics.countRequest(slot, undefined, status);
    this.accessLog?.write({
      requestId,
      slot,
      method: undefined,
      url: undefined,
      remoteAddress: clientAddress(socket),
      status,
      durationMs: 0,
      bytes: 0,
      aborted: false,
      upstreamError: null,
    });
  };

  /** 'checkExpectation': an Expect header other than 100-continue. */
  readonly onCheckExpectation = (req: EdgeRequest, res: EdgeResponse): void => {
    this.answerLocally(req, res, 417, 'expectation_failed');
  };

  /** 'connect': the public listener is not a forward proxy. */
  readonly onConnect = (req: EdgeRequest, stream: Duplex): void => {
    const socket = stream as Socket;
    const slot = this.registry.current.active;
    const requestId = requestIdFrom(req.headers['x-request-id']);
    socket.on('error', ignoreError);
    socket.write(this.errors.raw(405, 'method_not_allowed', slot, requestId));
    socket.destroySoon();
    this.metrics.countRequest(slot, req.method, 405);
  };

  private answerLocally(req: EdgeRequest, res: EdgeResponse, status: number, error: string): void {
    const slot = this.registry.current.active;
    const requestId = requestIdFrom(req.headers['x-request-id']);
    this.errors.send(res, status, error, slot, requestId);
    this.metrics.countRequest(slot, req.method, status);
  }
}

/** The answer Node is writing on this connection now, if any (its own internal field). */
function pendingAnswer(socket: Socket): EdgeResponse | null {
  const inFlight = (socket as Socket & { _httpMessage?: EdgeResponse | null })._httpMessage;
  return inFlight ?? null;
}

/** What Node's parser attaches to its errors: the chunk it failed in, and how far it got. */
interface ParseError extends NodeJS.ErrnoException {
  rawPacket?: unknown;
  bytesParsed?: unknown;
}

function clientErrorAnswer(error: ParseError): [number, string] {
  switch (error.code) {
    case 'HPE_HEADER_OVERFLOW':
      return overflowInRequestLine(error)
        ? [414, 'uri_too_long']
        : [431, 'request_header_fields_too_large'];
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return [413, 'chunk_extensions_too_large'];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, 'request_timeout'];
    default:
      return [400, 'bad_request'];
  }
}

/** A request line not ended yet: a method, a space and the start of a target. */
const OPEN_REQUEST_LINE = /^[A-Z]+ (?:\/|\*|[A-Za-z][A-Za-z0-9+.-]*:\/\/)[^\r\n ]*$/;

/**
 * Whether the header block overflowed MAX_HEADER_SIZE inside the request line
 * (a target too long: 414) rather than in the header fields (431). Node counts
 * both against one limit and says only where in the failing chunk it stopped;
 * a target trickled over several chunks is not recognised and gets 431.
 */
function overflowInRequestLine(error: ParseError): boolean {
  const { rawPacket, bytesParsed } = error;
  if (!Buffer.isBuffer(rawPacket) || typeof bytesParsed !== 'number') return false;
  const seen = rawPacket.subarray(0, bytesParsed).toString('latin1');
  // A keep-alive connection's earlier request may end in the same chunk.
  const previousEnd = seen.lastIndexOf('\r\n\r\n');
  return OPEN_REQUEST_LINE.test(previousEnd === -1 ? seen : seen.slice(previousEnd + 4));
}

function ignoreError(): void {}
