import type { Http2ServerRequest } from 'node:http2';
import { isWebSocketProtocol } from './h2-websocket.js';
import { isValidHost } from './headers.js';

/**
 * What the proxy refuses in an HTTP/2 request nghttp2 let through (it has
 * already refused malformed pseudo-headers and connection-specific fields
 * with RST_STREAM, and Node too many fields with ENHANCE_YOUR_CALM): the
 * same refusals as on HTTP/1.1.
 */
export function requestProblem(
  req: Http2ServerRequest,
  maxHeaderSize: number,
): [number, string] | null {
  // Node does not hold clients to the SETTINGS_MAX_HEADER_LIST_SIZE it advertises: 431 as on HTTP/1.1.
  const raw = req.rawHeaders;
  let size = 0;
  for (let i = 0; i < raw.length; i += 2) size += raw[i]!.length + raw[i + 1]!.length + 32;
  if (size > maxHeaderSize) return [431, 'request_header_fields_too_large'];
  if (req.method === 'CONNECT') {
    const protocol = req.headers[':protocol'];
    // Not a forward proxy: only RFC 8441's extended CONNECT, and only for WebSockets.
    if (protocol === undefined) return [405, 'method_not_allowed'];
    if (typeof protocol !== 'string' || !isWebSocketProtocol(protocol)) {
      return [400, 'unsupported_upgrade'];
    }
  }
  const url = req.url;
  if (url === undefined || url.charCodeAt(0) !== 47 /* "/" */) return [400, 'bad_request_target'];
  const authority = req.headers[':authority'] ?? req.headers.host;
  if (authority === undefined) return [400, 'missing_host_header'];
  if (!isValidHost(authority)) return [400, 'invalid_host_header'];
  return null;
}
