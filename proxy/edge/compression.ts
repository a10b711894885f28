import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Transform } from 'node:stream';
import { constants, createBrotliCompress, createGzip } from 'node:zlib';
import { CodingNegotiator, type ContentCoding } from './accept-encoding.js';

/**
 * COMPRESSION: gzip or brotli for a slot's answer of a compressible type
 * when the client accepts it and the slot did not compress, streamed (each
 * chunk of the slot is compressed and flushed as it arrives: no whole-body
 * buffering, and a streamed answer keeps flowing). Never for
 * `Cache-Control: no-transform`, partial answers or Range requests, HEAD,
 * 204/304, or a declared body under MIN_COMPRESSED_BYTES.
 */

/** A declared body shorter than this is sent as it is: the coding's own bytes would eat the gain. */
export const MIN_COMPRESSED_BYTES = 1024;

/** zlib level 5 and brotli quality 4: close to gzip -6 in ratio for much less CPU (Caddy's gzip default is 5). */
const GZIP_LEVEL = 5;
const BROTLI_QUALITY = 4;
/** Brotli's window: 256 KiB instead of 4 MiB per answer being compressed. */
const BROTLI_WINDOW_BITS = 18;

/** What to do with a slot's answer. */
export type CompressionDecision = 'leave' | 'vary' | ContentCoding;

/** What the decision reads of a client request (HTTP/1.1's EdgeRequest, HTTP/2's compatibility request). */
export interface CompressionRequest {
  readonly method?: string | undefined;
  readonly headers: IncomingHttpHeaders;
}

/**
 * The client answer a compressed body is written into: HTTP/1.1's
 * EdgeResponse or HTTP/2's compatibility answer (which has neither
 * `destroyed` nor `proxyAnswered`: its 'close' ends the relay instead).
 */
export interface CompressedSink {
  readonly writableEnded: boolean;
  readonly destroyed?: boolean;
  /** The proxy answers by itself (a refused body): the slot's answer is dropped. */
  readonly proxyAnswered?: boolean;
  write(chunk: Buffer): boolean;
  end(): void;
  destroy(): void;
  once(event: 'drain' | 'close', listener: () => void): unknown;
}

/** A compressed body on its way: what it has written so far (the access log's bytes on HTTP/2). */
export interface CompressedBody {
  readonly bytesWritten: number;
}

/** A compressed body whose caller writes the slot's chunks into `encoder` itself. */
export interface CompressedIntake extends CompressedBody {
  readonly encoder: Transform;
}

/** application/* types that compress; text/*, +json and +xml are recognised by form. */
const COMPRESSIBLE_APPLICATION = new Set([
  'application/json',
  'application/javascript',
  'application/x-javascript',
  'application/ecmascript',
  'application/xml',
  'application/wasm',
  'application/graphql',
  'application/x-ndjson',
  'application/manifest+json',
]);
const COMPRESSIBLE_OTHER = new Set([
  'image/svg+xml',
  'image/x-icon',
  'image/vnd.microsoft.icon',
  'image/bmp',
  'font/ttf',
  'font/otf',
]);

/** Whether a Content-Type names a type worth compressing (parameters and case ignored). */
export function isCompressibleType(contentType: string): boolean {
  const semicolon = contentType.indexOf(';');
  const type = (semicolon === -1 ? contentType : contentType.slice(0, semicolon))
    .trim()
    .toLowerCase();
  // Events are sent one by one as they happen; a coding would hold them back.
  if (type === 'text/event-stream') return false;
  if (type.startsWith('text/')) return true;
  if (type.startsWith('application/')) {
    return COMPRESSIBLE_APPLICATION.has(type) || type.endsWith('+json') || type.endsWith('+xml');
  }
  return COMPRESSIBLE_OTHER.has(type);
}

/** Content-Type values remembered at most (slots answer with a handful). */
const TYPE_CACHE_LIMIT = 256;

const NO_TRANSFORM = /(?:^|,)\s*no-transform\s*(?:,|$)/i;
const VARIES_ON_ENCODING = /(?:^|,)\s*(?:accept-encoding|\*)\s*(?:,|$)/i;

export class Compression {
  private readonly negotiator = new CodingNegotiator();
  private readonly compressibleTypes = new Map<string, boolean>();

  /**
   * Whether to compress a slot's answer, only add `Vary: Accept-Encoding`
   * (the answer would be compressed for another client), or leave it. Reads
   * the two header objects only; allocates nothing once the Content-Type and
   * Accept-Encoding values are known.
   */
  decide(
    req: CompressionRequest,
    status: number,
    headers: IncomingHttpHeaders,
  ): CompressionDecision {
    if (status < 200 || status === 204 || status === 206 || status === 304) return 'leave';
    if (headers['content-encoding'] !== undefined) return 'leave';
    const type = headers['content-type'];
    if (type === undefined || !this.isCompressible(type)) return 'leave';
    const cacheControl = headers['cache-control'];
    if (cacheControl !== undefined && NO_TRANSFORM.test(cacheControl)) return 'leave';
    const length = headers['content-length'];
    if (length !== undefined && Number(length) < MIN_COMPRESSED_BYTES) return 'leave';
    const request = req.headers;
    if (request.range !== undefined) return 'leave';
    const accepted = request['accept-encoding'];
    if (req.method === 'HEAD' || accepted === undefined) return 'vary';
    return this.negotiator.preferred(accepted) ?? 'vary';
  }

  /**
   * Edits the staged head of an answer ([name, value, ...], lower-case
   * names as the slot's were parsed) for the decision: Vary in both cases;
   * for a coding also Content-Encoding, no Content-Length (the length
   * changes; Node frames the answer with chunks), no Accept-Ranges (ranges
   * of the compressed form are not served) and a weak ETag (the bytes differ
   * from the slot's, the meaning does not).
   */
  editHead(lines: string[], decision: 'vary' | ContentCoding): void {
    addVary(lines);
    if (decision === 'vary') return;
    removeLine(lines, 'content-length');
    removeLine(lines, 'accept-ranges');
    const etag = findLine(lines, 'etag');
    if (etag !== -1 && !lines[etag + 1]!.startsWith('W/')) lines[etag + 1] = `W/${lines[etag + 1]}`;
    lines.push('content-encoding', decision);
  }

  /** Streams the slot's answer body through `coding` into the client answer. */
  relay(proxyRes: IncomingMessage, res: CompressedSink, coding: ContentCoding): CompressedBody {
    return CompressedRelay.start(proxyRes, res, encoderFor(coding, proxyRes.headers));
  }

  /**
   * For a slot answer whose body arrives as chunks rather than as a stream
   * (the undici pool, slot-pass.ts): the encoder to write them into, already
   * relaying into the client answer. The caller ends it when the slot's body
   * ends (never when it breaks off) and waits for its 'drain' when a write
   * answers false; an encoder failure destroys the client answer.
   */
  encoderInto(
    res: CompressedSink,
    coding: ContentCoding,
    headers: IncomingHttpHeaders,
  ): CompressedIntake {
    return CompressedRelay.start(null, res, encoderFor(coding, headers));
  }

  private isCompressible(type: string): boolean {
    let known = this.compressibleTypes.get(type);
    if (known === undefined) {
      known = isCompressibleType(type);
      if (this.compressibleTypes.size < TYPE_CACHE_LIMIT) this.compressibleTypes.set(type, known);
    }
    return known;
  }
}

/** Every write flushed: a chunk of the slot reaches the client as soon as it is compressed. */
const GZIP_OPTIONS = { level: GZIP_LEVEL, flush: constants.Z_SYNC_FLUSH };

/** The one encoder set: gzip, or brotli sized by the slot's declared length. */
function encoderFor(coding: ContentCoding, headers: IncomingHttpHeaders): Transform {
  return coding === 'br' ? brotli(Number(headers['content-length'])) : createGzip(GZIP_OPTIONS);
}

function brotli(declaredLength: number): Transform {
  const params: Record<number, number> = {
    [constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY,
    [constants.BROTLI_PARAM_LGWIN]: BROTLI_WINDOW_BITS,
    [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
  };
  if (Number.isSafeInteger(declaredLength) && declaredLength > 0) {
    params[constants.BROTLI_PARAM_SIZE_HINT] = declaredLength;
  }
  return createBrotliCompress({ flush: constants.BROTLI_OPERATION_FLUSH, params });
}

function removeLine(lines: string[], name: string): void {
  for (let i = 0; i < lines.length; i += 2) {
    if (lines[i] === name) {
      lines.splice(i, 2);
      i -= 2;
    }
  }
}

/** The index of a header's name in header lines, or -1. */
function findLine(lines: readonly string[], name: string): number {
  for (let i = 0; i < lines.length; i += 2) if (lines[i] === name) return i;
  return -1;
}

function addVary(lines: string[]): void {
  const vary = findLine(lines, 'vary');
  if (vary === -1) {
    lines.push('vary', 'Accept-Encoding');
    return;
  }
  const value = lines[vary + 1]!;
  if (!VARIES_ON_ENCODING.test(value)) lines[vary + 1] = `${value}, Accept-Encoding`;
}

/**
 * slot answer → encoder → client answer, with the backpressure of a pipe
 * both ways. The encoder is ended only by the slot's answer ending: a slot
 * that breaks off leaves it unended (forward.ts then cuts the client
 * answer), so a cut answer never looks complete to the client. Whatever
 * ends the client answer destroys the encoder and its zlib memory.
 */
class CompressedRelay implements CompressedIntake {
  /** `proxyRes` null: the caller writes the slot's body into the encoder itself. */
  static start(
    proxyRes: IncomingMessage | null,
    res: CompressedSink,
    encoder: Transform,
  ): CompressedRelay {
    const relay = new CompressedRelay(proxyRes, res, encoder);
    proxyRes?.pipe(encoder);
    encoder.on('data', relay.onData);
    encoder.on('end', relay.onEnd);
    encoder.on('error', relay.onError);
    res.once('close', relay.onClose);
    return relay;
  }

  bytesWritten = 0;

  private constructor(
    private readonly proxyRes: IncomingMessage | null,
    private readonly res: CompressedSink,
    readonly encoder: Transform,
  ) {}

  private readonly onData = (chunk: Buffer): void => {
    const res = this.res;
    if (res.destroyed === true || res.writableEnded || res.proxyAnswered === true) return;
    this.bytesWritten += chunk.length;
    if (!res.write(chunk)) {
      this.encoder.pause();
      res.once('drain', this.onDrain);
    }
  };

  private readonly onDrain = (): void => {
    this.encoder.resume();
  };

  private readonly onEnd = (): void => {
    const res = this.res;
    if (res.destroyed !== true && !res.writableEnded && res.proxyAnswered !== true) res.end();
  };

  private readonly onError = (): void => {
    // Without proxyRes, destroying the client answer ends the slot's call (forward.ts, finished).
    this.proxyRes?.destroy();
    this.res.destroy();
  };

  private readonly onClose = (): void => {
    this.proxyRes?.unpipe(this.encoder);
    this.encoder.destroy();
  };
}
