import type { EdgeRequest, EdgeResponse } from '../edge/exchange.js';
import type { EdgeFront } from '../edge/plain-front.js';
import { pathOf } from '../edge/upstream.js';
import {
  answerChallenge,
  CHALLENGE_PATH_PREFIX,
  type ChallengeResponder,
} from './challenge-responder.js';
import type { RedirectException } from './tls-config.js';

export interface HttpsFrontOptions {
  /** The pending HTTP-01 tokens (undefined without ACME_DOMAINS). */
  challenges: ChallengeResponder | undefined;
  /** HTTPS_REDIRECT_EXCEPT when the redirect is on; null: plain HTTP is forwarded. */
  redirect: { exceptions: readonly RedirectException[] } | null;
  /** HSTS max-age in seconds; null: no Strict-Transport-Security. */
  hstsMaxAge: number | null;
}

/**
 * The public listeners' front with TLS on. On the plain listener it answers
 * the pending ACME HTTP-01 tokens before anything else, and answers other
 * requests with 308 to the same URL on https (host without its port, the
 * TLS port when it is not 443), except paths under
 * /.well-known/acme-challenge/ (another ACME client behind the proxy may
 * use them) and HTTPS_REDIRECT_EXCEPT. Answers over TLS carry HSTS.
 */
export class HttpsFront implements EdgeFront {
  readonly hsts: string | null;
  private readonly challenges: ChallengeResponder | undefined;
  private readonly redirectOn: boolean;
  private readonly exceptions: readonly RedirectException[];
  private portSuffix = '';

  constructor(options: HttpsFrontOptions) {
    this.challenges = options.challenges;
    this.redirectOn = options.redirect !== null;
    this.exceptions = options.redirect?.exceptions ?? [];
    this.hsts = options.hstsMaxAge === null ? null : `max-age=${options.hstsMaxAge}`;
  }

  /** The port the TLS listener got (PROXY_TLS_PORT, or the one picked for port 0). */
  setTlsPort(port: number): void {
    this.portSuffix = port === 443 ? '' : `:${port}`;
  }

  challenge(req: EdgeRequest, res: EdgeResponse): boolean {
    const responder = this.challenges;
    const url = req.url;
    if (responder === undefined || url === undefined || !url.startsWith(CHALLENGE_PATH_PREFIX)) {
      return false;
    }
    const path = pathOf(url);
    if (responder.respond(path) === undefined) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    res.setOwnHeader('x-togather-slot', req.slot);
    res.setOwnHeader('x-request-id', req.requestId);
    return answerChallenge(responder, req.method, path, res);
  }

  redirect(req: EdgeRequest, res: EdgeResponse): boolean {
    if (!this.redirectOn) return false;
    const url = req.url;
    const host = req.headers.host;
    // An HTTP/1.0 request without Host names nowhere to redirect to: it is forwarded.
    if (url === undefined || host === undefined || host === '') return false;
    const path = pathOf(url);
    if (path.startsWith(CHALLENGE_PATH_PREFIX)) return false;
    for (const exception of this.exceptions) {
      if (exception.prefix ? path.startsWith(exception.path) : path === exception.path) {
        return false;
      }
    }
    res.statusCode = 308;
    res.setOwnHeader('x-togather-slot', req.slot);
    res.setOwnHeader('x-request-id', req.requestId);
    res.setOwnHeader('location', `https://${hostWithoutPort(host)}${this.portSuffix}${url}`);
    res.setOwnHeader('content-length', '0');
    res.end();
    return true;
  }
}

/** `example.org:8080` → `example.org`, `[::1]:8080` → `[::1]`. */
function hostWithoutPort(host: string): string {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end === -1 ? host : host.slice(0, end + 1);
  }
  const colon = host.lastIndexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}
