import type { ServerResponse } from 'node:http';

export const CHALLENGE_PATH_PREFIX = '/.well-known/acme-challenge/';

/**
 * What the plain listener asks before forwarding: the key authorization for
 * `/.well-known/acme-challenge/<token>` when the token belongs to one of the
 * fleet's pending ACME orders, else undefined and the request goes to the
 * slot like any other.
 */
export interface ChallengeResponder {
  respond(path: string): string | undefined;
}

/** One pending HTTP-01 token, as a cluster primary relays it to its workers. */
export interface PendingChallenge {
  token: string;
  keyAuthorization: string;
  /** How long it stays answerable. */
  ttlMs: number;
}

/** base64url, as RFC 8555 section 8.3 makes tokens. */
const TOKEN = /^[A-Za-z0-9_-]+$/;

/**
 * The HTTP-01 tokens of pending orders, in memory. Entries expire on their own
 * (an order that died mid-way must not leave its token answered forever).
 */
export class Http01Challenges implements ChallengeResponder {
  private readonly pending = new Map<string, { keyAuthorization: string; expiresAt: number }>();
  private readonly listeners: Array<() => void> = [];

  constructor(private readonly now: () => number = Date.now) {}

  add(token: string, keyAuthorization: string, ttlMs: number): void {
    if (!TOKEN.test(token)) throw new Error(`not an ACME token: ${JSON.stringify(token)}`);
    this.pending.set(token, { keyAuthorization, expiresAt: this.now() + ttlMs });
    this.changed();
  }

  remove(token: string): void {
    if (this.pending.delete(token)) this.changed();
  }

  /** Called after every add or remove (cluster workers get the tokens relayed). */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** The tokens still pending, each with the time it has left. */
  snapshot(): PendingChallenge[] {
    const now = this.now();
    const out: PendingChallenge[] = [];
    for (const [token, entry] of this.pending) {
      if (entry.expiresAt > now) {
        out.push({ token, keyAuthorization: entry.keyAuthorization, ttlMs: entry.expiresAt - now });
      }
    }
    return out;
  }

  /** Replaces every token with these (what a cluster worker does with the primary's snapshot). */
  replace(challenges: readonly PendingChallenge[]): void {
    this.pending.clear();
    for (const c of challenges) {
      if (TOKEN.test(c.token)) {
        this.pending.set(c.token, {
          keyAuthorization: c.keyAuthorization,
          expiresAt: this.now() + c.ttlMs,
        });
      }
    }
    this.changed();
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }

  get size(): number {
    return this.pending.size;
  }

  respond(path: string): string | undefined {
    if (!path.startsWith(CHALLENGE_PATH_PREFIX)) return undefined;
    const entry = this.pending.get(path.slice(CHALLENGE_PATH_PREFIX.length));
    if (!entry) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.pending.delete(path.slice(CHALLENGE_PATH_PREFIX.length));
      return undefined;
    }
    return entry.keyAuthorization;
  }
}

/**
 * Answers a challenge request on the plain listener if the responder knows
 * it; returns false (nothing written) otherwise.
 */
export function answerChallenge(
  responder: ChallengeResponder,
  method: string | undefined,
  path: string | undefined,
  res: ServerResponse,
): boolean {
  if ((method !== 'GET' && method !== 'HEAD') || path === undefined) return false;
  const keyAuthorization = responder.respond(path);
  if (keyAuthorization === undefined) return false;
  res.writeHead(200, {
    'content-type': 'text/plain',
    'content-length': Buffer.byteLength(keyAuthorization),
    'cache-control': 'no-store',
  });
  res.end(method === 'HEAD' ? undefined : keyAuthorization);
  return true;
}
