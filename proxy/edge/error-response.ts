import { STATUS_CODES } from 'node:http';
import type { EdgeResponse } from './exchange.js';
import type { Slot } from '../state/slot-state.js';

/**
 * The proxy's own error answers: JSON `{"error","slot","request_id"}` with
 * X-Togather-Slot and X-Request-Id, on a response object or, before a
 * request exists or after an upgrade took the socket, as raw HTTP text.
 */
export interface ProxyErrorBody {
  error: string;
  slot: Slot;
  request_id: string;
}

function body(error: string, slot: Slot, requestId: string): string {
  const payload: ProxyErrorBody = { error, slot, request_id: requestId };
  return JSON.stringify(payload);
}

export function sendProxyError(
  res: EdgeResponse,
  status: number,
  error: string,
  slot: Slot,
  requestId: string,
): void {
  const text = body(error, slot, requestId);
  // A slot answer that never started is replaced, not merged into this one.
  res.discardStagedHead();
  res.statusCode = status;
  res.setOwnHeader('x-togather-slot', slot);
  res.setOwnHeader('x-request-id', requestId);
  res.setOwnHeader('content-type', 'application/json; charset=utf-8');
  res.setOwnHeader('content-length', String(Buffer.byteLength(text)));
  res.setOwnHeader('cache-control', 'no-store');
  if (res.hsts !== null) res.setOwnHeader('strict-transport-security', res.hsts);
  res.end(text);
}

/** A complete HTTP/1.1 error answer that closes the connection. */
export function rawProxyError(
  status: number,
  error: string,
  slot: Slot,
  requestId: string,
): string {
  const text = body(error, slot, requestId);
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
    `X-Togather-Slot: ${slot}\r\n` +
    `X-Request-Id: ${requestId}\r\n` +
    'Content-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(text)}\r\n` +
    'Cache-Control: no-store\r\n' +
    `Date: ${new Date().toUTCString()}\r\n` +
    'Connection: close\r\n' +
    '\r\n' +
    text
  );
}
