import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { createRedisLock } from '../../deploy/locks/lock-redis.js';
import { LockHeldError } from '../../deploy/locks/lock.js';
import type { AcmeFleet } from './acme-fleet.js';
import type { Http01Challenges } from './challenge-responder.js';
import { acmeKeys } from './redis-cert-store.js';

export interface RedisFleetOptions {
  redis: Redis;
  /** A connection of its own: a subscribed connection can do nothing else. */
  subscriber: Redis;
  keyPrefix: string;
  challenges: Http01Challenges;
  logger: Logger;
  /** Time to live of the ordering lock, renewed while held (default 2 min). */
  lockTtlMs?: number;
}

type FleetMessage =
  | { type: 'certificate'; domain: string }
  | { type: 'challenge'; token: string; key_authorization: string; ttl_ms: number }
  | { type: 'challenge_done'; token: string };

function parseMessage(text: string): FleetMessage | undefined {
  try {
    const value = JSON.parse(text) as Partial<Record<string, unknown>>;
    if (value.type === 'certificate' && typeof value.domain === 'string') {
      return { type: 'certificate', domain: value.domain };
    }
    if (
      value.type === 'challenge' &&
      typeof value.token === 'string' &&
      typeof value.key_authorization === 'string' &&
      typeof value.ttl_ms === 'number'
    ) {
      return {
        type: 'challenge',
        token: value.token,
        key_authorization: value.key_authorization,
        ttl_ms: value.ttl_ms,
      };
    }
    if (value.type === 'challenge_done' && typeof value.token === 'string') {
      return { type: 'challenge_done', token: value.token };
    }
  } catch {
    // not ours: ignored below
  }
  return undefined;
}

/**
 * A fleet over Redis: the ordering lock is `<prefix>acme:lock` (SET NX PX
 * with an owner token, renewed while held, released by compare-and-delete),
 * and `<prefix>acme:changed` carries new certificates and pending challenges
 * to every proxy. A missed message heals: the ACME manager also reads the
 * store periodically.
 */
export async function createRedisFleet(options: RedisFleetOptions): Promise<AcmeFleet> {
  const { redis, subscriber, challenges, logger } = options;
  const keys = acmeKeys(options.keyPrefix);
  const lock = createRedisLock({ redis, key: keys.lock, ttlMs: options.lockTtlMs ?? 120_000 });
  const certificateListeners: Array<(domain: string) => void> = [];

  subscriber.on('message', (channel: string, text: string) => {
    if (channel !== keys.channel) return;
    const message = parseMessage(text);
    if (!message) {
      logger.warn({ channel }, 'unreadable ACME fleet message ignored');
      return;
    }
    if (message.type === 'certificate') {
      for (const listener of certificateListeners) listener(message.domain);
    } else if (message.type === 'challenge') {
      try {
        challenges.add(message.token, message.key_authorization, message.ttl_ms);
      } catch (error) {
        logger.warn({ err: (error as Error).message }, 'ACME fleet challenge ignored');
      }
    } else {
      challenges.remove(message.token);
    }
  });
  await subscriber.subscribe(keys.channel);

  async function publish(message: FleetMessage): Promise<void> {
    await redis.publish(keys.channel, JSON.stringify(message));
  }

  return {
    async tryLock(purpose) {
      try {
        const held = await lock.acquire(purpose);
        void held.lost.then((reason) => logger.warn({ reason }, 'ACME ordering lock lost'));
        return { release: () => held.release() };
      } catch (error) {
        if (error instanceof LockHeldError) return undefined;
        throw error;
      }
    },
    async shareChallenge(token, keyAuthorization, ttlMs) {
      challenges.add(token, keyAuthorization, ttlMs);
      await publish({
        type: 'challenge',
        token,
        key_authorization: keyAuthorization,
        ttl_ms: ttlMs,
      });
    },
    async withdrawChallenge(token) {
      challenges.remove(token);
      await publish({ type: 'challenge_done', token });
    },
    announceCertificate: (domain) => publish({ type: 'certificate', domain }),
    onCertificate: (listener) => void certificateListeners.push(listener),
    async close() {
      await subscriber.unsubscribe(keys.channel).catch(() => undefined);
    },
  };
}
