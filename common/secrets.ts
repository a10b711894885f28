import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Compares a presented secret with the expected one in time independent of
 * where they differ and of their lengths: both are hashed first, so
 * timingSafeEqual always sees two 32-byte buffers.
 */
export function secretsEqual(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return match?.[1];
}

/** A random secret for development runs: url-safe, `bytes` of entropy. */
export function generateSecret(bytes = 48): string {
  return randomBytes(bytes).toString('base64url');
}
