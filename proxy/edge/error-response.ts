import { STATUS_CODES } from 'node:http';
import type { EdgeResponse } from './exchange.js';
import type { SecurityHeaders } from './security-headers.js';
import type { Slot } from '../state/slot-state.js';

/**
 * The proxy's own error answers: JSON `{"error","slot","request_id"}` with
 * X-Togather-Slot, X-Request-Id and the security headers (when configured),
 * on a response object or, before a request exists or after an upgrade took
 * the socket, as raw HTTP text.
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

export class ErrorAnswers {
  private readonly extraLines: readonly string[];
  private readonly extraRaw: string;

  /** `security`: the headers every answer carries (null: none). */
  constructor(security: SecurityHeaders | null) {
    this.extraLines = security?.lines ?? [];
    this.extraRaw = security?.rawText ?? '';
  }

  /** Answers `res` with `status` and the JSON error body. */
  send(res: EdgeResponse, status: number, error: string, slot: Slot, requestId: string): void {
    res.end(this.head(res, status, error, slot, requestId));
  }

  /**
   * Writes the whole answer but leaves the response open: its end closes the
   * connection, which the caller delays while the client is still sending a
   * body it will not read (body-limit.ts), so the client can read the answer
   * before the close.
   */
  sendOpen(res: EdgeResponse, status: number, error: string, slot: Slot, requestId: string): void {
    res.write(this.head(res, status, error, slot, requestId));
  }

  /** A complete HTTP/1.1 error answer that closes the connection. */
  raw(status: number, error: string, slot: Slot, requestId: string): string {
    const text = body(error, slot, requestId);
    return (
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
      `X-Togather-Slot: ${slot}\r\n` +
      `X-Request-Id: ${requestId}\r\n` +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(text)}\r\n` +
      'Cache-Control: no-store\r\n' +
      this.extraRaw +
      `Date: ${new Date().toUTCString()}\r\n` +
      'Connection: close\r\n' +
      '\r\n' +
      text
    );
  }

  /** Sets the answer's status and headers; returns its body. */
  private head(
    res: EdgeResponse,
    status: number,
    error: string,
    slot: Slot,
    requestId: string,
  ): string {
    const text = body(error, slot, requestId);
    // A slot answer that never started is replaced, not merged into this one.
    res.discardStagedHead();
    res.proxyAnswered = true;
    res.statusCode = status;
    res.setOwnHeader('x-togather-slot', slot);
    res.setOwnHeader('x-request-id', requestId);
    res.setOwnHeader('content-type', 'application/json; charset=utf-8');
    res.setOwnHeader('content-length', String(Buffer.byteLength(text)));
    res.setOwnHeader('cache-control', 'no-store');
    if (res.hsts !== null) res.setOwnHeader('strict-transport-security', res.hsts);
    const extra = this.extraLines;
    for (let i = 0; i < extra.length; i += 2) res.setOwnHeader(extra[i]!, extra[i + 1]!);
    return text;
  }
}
