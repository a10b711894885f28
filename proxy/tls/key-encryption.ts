import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** The stored value cannot be opened: wrong CERT_ENCRYPTION_KEY, or it was altered or moved. */
export class SealedValueError extends Error {
  override name = 'SealedValueError';
}

/**
 * AES-256-GCM for private keys at rest. The 256-bit key is derived from
 * CERT_ENCRYPTION_KEY with HKDF-SHA256 (the variable is a random string, not
 * a password, so no slow KDF is needed). Each value is bound to its context
 * (the Redis key it is stored under) as associated data, so a value copied
 * to another key does not open.
 */
export class KeyEncryption {
  private readonly key: Buffer;

  constructor(secret: string) {
    if (secret.length < 32) throw new Error('the encryption secret must be at least 32 characters');
    this.key = Buffer.from(
      hkdfSync('sha256', secret, 'togather-edge', 'certificate private keys v1', 32),
    );
  }

  /** `v1.<iv>.<tag>.<ciphertext>`, base64url parts. */
  seal(plaintext: string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    const parts = [iv, cipher.getAuthTag(), ciphertext].map((b) => b.toString('base64url'));
    return [VERSION, ...parts].join('.');
  }

  open(sealed: string, context: string): string {
    const [version, iv, tag, ciphertext] = sealed.split('.');
    if (version !== VERSION || !iv || !tag || ciphertext === undefined) {
      throw new SealedValueError('not a sealed value of this version');
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'), {
        authTagLength: TAG_BYTES,
      });
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      const plain = Buffer.concat([
        decipher.update(Buffer.from(ciphertext, 'base64url')),
        decipher.final(),
      ]);
      return plain.toString('utf8');
    } catch {
      throw new SealedValueError(
        'cannot decrypt (a different CERT_ENCRYPTION_KEY, or the value was altered)',
      );
    }
  }
}
