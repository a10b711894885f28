import type { IncomingHttpHeaders } from 'node:http';
import { DROPPED_RESPONSE_HEADERS } from './headers.js';

/**
 * SECURITY_HEADERS and CONTENT_SECURITY_POLICY: the headers nginx's and
 * Caddy's edge configurations added to every answer. Each is added only when
 * the slot did not set it (the app knows better, e.g. a page meant to be
 * framed), the slot's `Server` is removed (it names the software and version
 * behind the edge), and the proxy's own error answers carry the same set.
 */

/** SECURITY_HEADERS=on, as [name, value] pairs. */
export const DEFAULT_SECURITY_HEADERS: ReadonlyArray<readonly [string, string]> = [
  ['X-Frame-Options', 'SAMEORIGIN'],
  ['X-Content-Type-Options', 'nosniff'],
  ['Referrer-Policy', 'strict-origin-when-cross-origin'],
  // Powerful features off unless the app asks for them with its own header.
  [
    'Permissions-Policy',
    'accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()',
  ],
];

export interface SecurityHeadersOptions {
  /** SECURITY_HEADERS. */
  enabled: boolean;
  /** CONTENT_SECURITY_POLICY; added even with SECURITY_HEADERS=off, since it was asked for. */
  contentSecurityPolicy: string | undefined;
}

const DROPPED_WITH_SERVER: Readonly<Record<string, true>> = Object.assign(
  Object.create(null) as Record<string, true>,
  DROPPED_RESPONSE_HEADERS,
  { server: true },
);

export class SecurityHeaders {
  /** Slot headers never copied to the client: the hop-by-hop set, plus Server when on. */
  readonly droppedResponseHeaders: Readonly<Record<string, true>>;
  /** The headers added, as [name, value, ...] with names as written. */
  readonly lines: readonly string[];
  /** The same as raw header text, each line ending in CRLF. */
  readonly rawText: string;
  /** Lower-case names of `lines`, as Node keys a parsed header object. */
  private readonly keys: readonly string[];

  constructor(options: SecurityHeadersOptions) {
    const pairs: Array<readonly [string, string]> = options.enabled
      ? [...DEFAULT_SECURITY_HEADERS]
      : [];
    if (options.contentSecurityPolicy !== undefined) {
      pairs.push(['Content-Security-Policy', options.contentSecurityPolicy]);
    }
    this.droppedResponseHeaders = options.enabled ? DROPPED_WITH_SERVER : DROPPED_RESPONSE_HEADERS;
    this.lines = pairs.flat();
    this.keys = pairs.map(([name]) => name.toLowerCase());
    this.rawText = pairs.map(([name, value]) => `${name}: ${value}\r\n`).join('');
  }

  /** Null when neither SECURITY_HEADERS nor CONTENT_SECURITY_POLICY asks for anything. */
  static from(options: SecurityHeadersOptions): SecurityHeaders | null {
    if (!options.enabled && options.contentSecurityPolicy === undefined) return null;
    return new SecurityHeaders(options);
  }

  /** Appends to a slot answer's header lines the headers its slot did not set. */
  addMissing(lines: string[], headers: IncomingHttpHeaders): void {
    const keys = this.keys;
    const added = this.lines;
    for (let i = 0; i < keys.length; i++) {
      if (headers[keys[i]!] === undefined) lines.push(added[2 * i]!, added[2 * i + 1]!);
    }
  }

  /** The same for an HTTP/2 answer's header object: those `slotHeaders` lacks are set on `out`. */
  addMissingTo(out: Record<string, unknown>, slotHeaders: IncomingHttpHeaders): void {
    const keys = this.keys;
    const added = this.lines;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      if (slotHeaders[key] === undefined && out[key] === undefined) out[key] = added[2 * i + 1]!;
    }
  }

  /**
   * The same on a parsed header object that http-proxy-3 copies to the client
   * itself (a slot's answer to a WebSocket handshake), Server included.
   */
  applyTo(headers: IncomingHttpHeaders): void {
    if (this.droppedResponseHeaders.server === true) delete headers.server;
    const keys = this.keys;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      if (headers[key] === undefined) headers[key] = this.lines[2 * i + 1]!;
    }
  }
}
