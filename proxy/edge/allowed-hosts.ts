/**
 * ALLOWED_HOSTS: the host names this edge serves. A request for another
 * authority (a scan by IP address, a name pointed here by mistake) is
 * answered 421 Misdirected Request and never reaches a slot: RFC 9110
 * §15.5.20 gives 421 to a request that reached a server not configured to
 * answer for its authority, and lets the client retry it on another
 * connection, which is what a client sent here by a stale DNS record or a
 * shared connection should do. (400 would call the request malformed, 404
 * would claim the resource does not exist on a host this server speaks for.)
 *
 * ACME HTTP-01 challenges (/.well-known/acme-challenge/...) pass for any
 * host: a certificate order must not fail because a name of ACME_DOMAINS is
 * missing here, and the path carries nothing of the app's.
 */

export const ACME_CHALLENGE_PREFIX = '/.well-known/acme-challenge/';

export class AllowedHosts {
  private readonly names: ReadonlySet<string>;

  /** `names`: lower-case host names without port or trailing dot (as config.ts reads them). */
  constructor(names: readonly string[]) {
    this.names = new Set(names);
  }

  /** Whether a request with this Host header and target is for this edge. */
  allows(host: string | undefined, url: string): boolean {
    if (host !== undefined) {
      // The usual Host, already lower-case and without a port, is found without a copy.
      if (this.names.has(host) || this.names.has(hostName(host))) return true;
    }
    return url.startsWith(ACME_CHALLENGE_PREFIX);
  }
}

/** The host of a Host header value: without its port, lower-case, without a trailing dot. */
export function hostName(host: string): string {
  let end = host.length;
  if (host.charCodeAt(0) === 91 /* "[" */) {
    const close = host.indexOf(']');
    if (close !== -1) end = close + 1;
  } else {
    const colon = host.indexOf(':');
    if (colon !== -1) end = colon;
  }
  if (end > 0 && host.charCodeAt(end - 1) === 46 /* "." */) end--;
  return host.slice(0, end).toLowerCase();
}
