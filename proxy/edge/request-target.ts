import type { EdgeRequest } from './exchange.js';

/** Request targets and methods as the forwarder reads them. */

/** Methods that may be sent again when a pooled socket turns out to be closed. */
const IDEMPOTENT: Readonly<Record<string, true>> = Object.assign(
  Object.create(null) as Record<string, true>,
  { GET: true, HEAD: true, OPTIONS: true, PUT: true, DELETE: true, TRACE: true },
);

/** Whether a method may be sent again once its pooled socket turned out closed (HTTP/1.1 and HTTP/2). */
export function isIdempotentMethod(method: string): boolean {
  return IDEMPOTENT[method] === true;
}

/** Absolute-form targets (`GET http://host/path`) become origin-form; anything else is refused. */
export function toOriginForm(req: EdgeRequest): boolean {
  const url = req.url;
  if (url === undefined || !/^https?:\/\//i.test(url) || !URL.canParse(url)) return false;
  const parsed = new URL(url);
  req.url = `${parsed.pathname}${parsed.search}`;
  // RFC 9112 §3.2.2: the authority of an absolute-form target replaces Host.
  req.headers.host = parsed.host;
  return true;
}

export function isReplayable(req: EdgeRequest): boolean {
  if (req.method === undefined || !isIdempotentMethod(req.method)) return false;
  const length = req.headers['content-length'];
  return (length === undefined || length === '0') && req.headers['transfer-encoding'] === undefined;
}
