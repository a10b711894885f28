import type { Http01Challenges } from './challenge-responder.js';

/** The fleet's ordering lock while this proxy holds it. */
export interface OrderLock {
  release(): Promise<void>;
}

/**
 * How the proxies sharing a certificate store agree: one orders at a time
 * (under a lock), every one answers the pending order's HTTP-01 challenges
 * (the CA may reach any of them), and the others pick up what was stored.
 */
export interface AcmeFleet {
  /** The lock, or undefined while another proxy holds it. */
  tryLock(purpose: string): Promise<OrderLock | undefined>;
  /** Makes a token answerable on every proxy's plain listener for ttlMs. */
  shareChallenge(token: string, keyAuthorization: string, ttlMs: number): Promise<void>;
  withdrawChallenge(token: string): Promise<void>;
  /** Tells the others a domain's certificate was stored. */
  announceCertificate(domain: string): Promise<void>;
  /** Called when another proxy stored a certificate. */
  onCertificate(listener: (domain: string) => void): void;
  close(): Promise<void>;
}

/** One proxy on its own (the file store): nobody to agree with. */
export function soloFleet(challenges: Http01Challenges): AcmeFleet {
  return {
    tryLock: async () => ({ release: async () => undefined }),
    async shareChallenge(token, keyAuthorization, ttlMs) {
      challenges.add(token, keyAuthorization, ttlMs);
    },
    async withdrawChallenge(token) {
      challenges.remove(token);
    },
    announceCertificate: async () => undefined,
    onCertificate: () => undefined,
    close: async () => undefined,
  };
}
