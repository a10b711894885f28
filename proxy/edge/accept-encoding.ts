/**
 * Content negotiation of the answer's coding (RFC 9110 §12.5.3): which of
 * the codings this proxy writes a client's Accept-Encoding accepts, and
 * which it prefers.
 */

/** The codings the proxy compresses with. */
export type ContentCoding = 'br' | 'gzip';

const Q_VALUE = /^q=(0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/i;

/**
 * The coding to answer with: the acceptable one with the higher q-value,
 * brotli on a tie (it compresses text better at the same speed); null when
 * neither is acceptable. `q=0` refuses a coding, `*` stands for every coding
 * not named, `x-gzip` is gzip (§8.4.1.3), and an entry with an unreadable
 * q-value counts as not acceptable.
 */
export function preferredCoding(acceptEncoding: string): ContentCoding | null {
  let br = -1;
  let gzip = -1;
  let any = -1;
  for (const entry of acceptEncoding.split(',')) {
    const parameters = entry.split(';');
    const coding = parameters[0]!.trim().toLowerCase();
    if (coding === '') continue;
    let q = 1;
    for (let i = 1; i < parameters.length; i++) {
      const parameter = parameters[i]!.trim();
      if (!/^q=/i.test(parameter)) continue;
      const match = Q_VALUE.exec(parameter);
      q = match ? Number(match[1]) : 0;
    }
    if (coding === 'br') br = Math.max(br, q);
    else if (coding === 'gzip' || coding === 'x-gzip') gzip = Math.max(gzip, q);
    else if (coding === '*') any = Math.max(any, q);
  }
  if (br === -1) br = any;
  if (gzip === -1) gzip = any;
  if (br <= 0 && gzip <= 0) return null;
  return br >= gzip ? 'br' : 'gzip';
}

/** Values remembered at most: clients send few distinct Accept-Encoding values, but any they like. */
const CACHE_LIMIT = 256;

/**
 * preferredCoding with its answers remembered per header value, so the hot
 * path parses (and allocates for) a value once; past CACHE_LIMIT distinct
 * values the rest are parsed each time.
 */
export class CodingNegotiator {
  private readonly known = new Map<string, ContentCoding | null>();

  preferred(acceptEncoding: string): ContentCoding | null {
    const known = this.known.get(acceptEncoding);
    if (known !== undefined) return known;
    const coding = preferredCoding(acceptEncoding);
    if (this.known.size < CACHE_LIMIT) this.known.set(acceptEncoding, coding);
    return coding;
  }
}
