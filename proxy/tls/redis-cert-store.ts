import type { Redis } from 'ioredis';
import type { CertificatePem } from './certificate-pair.js';
import { assertDomainName, type CertificateStore } from './cert-store.js';
import type { KeyEncryption } from './key-encryption.js';

/** The keys ACME uses under REDIS_KEY_PREFIX. */
export function acmeKeys(prefix: string) {
  return {
    account: `${prefix}acme:account`,
    certificate: (domain: string) => `${prefix}acme:cert:${domain}`,
    lock: `${prefix}acme:lock`,
    channel: `${prefix}acme:changed`,
  };
}

export interface RedisCertificateStoreOptions {
  redis: Redis;
  keyPrefix: string;
  encryption: KeyEncryption;
}

/** A stored value we did not write, or written with another encryption key. */
export class StoredValueUnreadable extends Error {
  override name = 'StoredValueUnreadable';
}

function parse(key: string, text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === 'object' && value !== null) return value as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new StoredValueUnreadable(`${key} does not hold a JSON object`);
}

/**
 * Account key and certificates in Redis, shared by the fleet:
 * `<prefix>acme:account` `{key}` and `<prefix>acme:cert:<domain>`
 * `{cert, key, stored_at}`, JSON strings. Private keys are sealed with
 * AES-256-GCM; certificates are public and stay readable.
 */
export class RedisCertificateStore implements CertificateStore {
  readonly kind = 'redis';
  readonly location: string;
  private readonly keys: ReturnType<typeof acmeKeys>;

  constructor(private readonly options: RedisCertificateStoreOptions) {
    this.keys = acmeKeys(options.keyPrefix);
    this.location = `redis keys ${options.keyPrefix}acme:*`;
  }

  private open(key: string, value: unknown): string {
    if (typeof value !== 'string') throw new StoredValueUnreadable(`${key} has no sealed key`);
    try {
      return this.options.encryption.open(value, key);
    } catch (error) {
      throw new StoredValueUnreadable(`${key}: ${(error as Error).message}`);
    }
  }

  async loadAccountKey(): Promise<string | undefined> {
    const key = this.keys.account;
    const text = await this.options.redis.get(key);
    if (text === null) return undefined;
    return this.open(key, parse(key, text).key);
  }

  async saveAccountKey(pem: string): Promise<void> {
    const key = this.keys.account;
    const value = JSON.stringify({ key: this.options.encryption.seal(pem, key) });
    // NX: two proxies starting at once must end up with one account, the first one's.
    await this.options.redis.set(key, value, 'NX');
  }

  async loadCertificate(domain: string): Promise<CertificatePem | undefined> {
    assertDomainName(domain);
    const key = this.keys.certificate(domain);
    const text = await this.options.redis.get(key);
    if (text === null) return undefined;
    const value = parse(key, text);
    if (typeof value.cert !== 'string')
      throw new StoredValueUnreadable(`${key} has no certificate`);
    return { cert: value.cert, key: this.open(key, value.key) };
  }

  async saveCertificate(domain: string, pem: CertificatePem): Promise<void> {
    assertDomainName(domain);
    const key = this.keys.certificate(domain);
    const value = {
      cert: pem.cert,
      key: this.options.encryption.seal(pem.key, key),
      stored_at: new Date().toISOString(),
    };
    await this.options.redis.set(key, JSON.stringify(value));
  }
}
