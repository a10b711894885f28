/**
 * The little DER (X.690) that OCSP needs: reading the elements of a
 * certificate or a response, and writing a request. Node has X.509 parsing
 * but nothing for OCSP, and this is smaller than a general ASN.1 library.
 */

export const TAG = {
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  ENUMERATED: 0x0a,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
} as const;

/** Context-specific tag n, constructed ([n] EXPLICIT or a constructed IMPLICIT). */
export const contextTag = (n: number) => 0xa0 + n;

/** Malformed or unexpected DER. */
export class DerError extends Error {
  override name = 'DerError';
}

/** One element: its tag, and where its contents and the whole element lie in the buffer. */
export interface Element {
  tag: number;
  /** The whole element (tag, length, contents). */
  der: Buffer;
  contents: Buffer;
}

/** Reads the element at offset (single-byte tags only, as every tag here is). */
export function readElement(buffer: Buffer, offset = 0): Element {
  if (offset + 2 > buffer.length) throw new DerError('truncated element');
  const tag = buffer[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte tags are not supported');
  let length = buffer[offset + 1]!;
  let header = 2;
  if (length & 0x80) {
    const bytes = length & 0x7f;
    if (bytes === 0 || bytes > 4) throw new DerError('unsupported length');
    if (offset + 2 + bytes > buffer.length) throw new DerError('truncated length');
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + buffer[offset + 2 + i]!;
    header += bytes;
  }
  const end = offset + header + length;
  if (end > buffer.length) throw new DerError('element longer than its container');
  return {
    tag,
    der: buffer.subarray(offset, end),
    contents: buffer.subarray(offset + header, end),
  };
}

/** The elements inside a constructed element. */
export function children(element: Element): Element[] {
  const out: Element[] = [];
  let offset = 0;
  while (offset < element.contents.length) {
    const child = readElement(element.contents, offset);
    out.push(child);
    offset += child.der.length;
  }
  return out;
}

/** Reads an element that must have this tag. */
export function expectTag(element: Element | undefined, tag: number, what: string): Element {
  if (!element || element.tag !== tag) {
    throw new DerError(`${what}: expected tag 0x${tag.toString(16)}`);
  }
  return element;
}

/** The element of a whole buffer, which must hold exactly one. */
export function parseDer(buffer: Buffer, what: string): Element {
  const element = readElement(buffer);
  if (element.der.length !== buffer.length) throw new DerError(`${what}: trailing bytes`);
  return element;
}

function encodeLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function encode(tag: number, ...contents: Buffer[]): Buffer {
  const body = Buffer.concat(contents);
  return Buffer.concat([Buffer.from([tag]), encodeLength(body.length), body]);
}

/** `YYYYMMDDHHMMSS[.fff]Z`, as RFC 5280 profiles GeneralizedTime. */
export function readGeneralizedTime(element: Element): Date {
  expectTag(element, TAG.GENERALIZED_TIME, 'time');
  const text = element.contents.toString('ascii');
  const match = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\.\d+)?Z$/.exec(text);
  if (!match) throw new DerError(`not a GeneralizedTime: ${text}`);
  const [, y, mo, d, h, mi, s, fraction] = match;
  const ms = fraction ? Math.round(Number(fraction) * 1000) : 0;
  return new Date(Date.UTC(+y!, +mo! - 1, +d!, +h!, +mi!, +s!, ms));
}

/** An OID's dotted form (for algorithm and response type identifiers). */
export function readOid(element: Element): string {
  const bytes = expectTag(element, TAG.OID, 'object identifier').contents;
  if (bytes.length === 0) throw new DerError('empty object identifier');
  const parts: number[] = [];
  let value = 0;
  for (const byte of bytes) {
    value = value * 128 + (byte & 0x7f);
    if ((byte & 0x80) === 0) {
      parts.push(value);
      value = 0;
    }
  }
  const first = parts.shift()!;
  const head = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80];
  return [...head, ...parts].join('.');
}
