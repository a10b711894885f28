import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { StoreCorruptError, StoreUnavailableError } from './store.js';

export const DEFAULT_RECONNECT_MAX_DELAY_MS = 1000;
export const DEFAULT_COMMAND_TIMEOUT_MS = 1000;

export interface RedisConnectionSettings {
  /** Every command fails after this long instead of waiting for a stalled server. */
  commandTimeoutMs?: number;
  /** Upper bound of the reconnect backoff. */
  reconnectMaxDelayMs?: number;
}

/**
 * ioredis options for a connection that fails fast: no offline queue, no
 * retried commands, a command timeout. An outage must turn into an error the
 * caller can answer with (503) at once, never into a request that hangs until
 * Redis is back. Reconnection runs in the background with a capped backoff.
 */
export function fastFailRedisOptions(settings: RedisConnectionSettings = {}): RedisOptions {
  const maxDelay = settings.reconnectMaxDelayMs ?? DEFAULT_RECONNECT_MAX_DELAY_MS;
  return {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: settings.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
    // A TCP (and TLS) handshake may take longer than a command on a remote Redis.
    connectTimeout: Math.max(settings.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS, 2000),
    retryStrategy: (attempt: number) => Math.min(50 * 2 ** attempt, maxDelay),
  };
}

/** A command that failed after it was sent (no answer in time, connection lost while waiting). */
export function mayHaveRun(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return error.message === 'Command timed out' || error.message === 'Connection is closed.';
}

/** A Redis error reply that says the key holds something else than we wrote. */
function isWrongType(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('WRONGTYPE');
}

/**
 * Says in plain words why a Redis call failed. The text reaches operators
 * (logs, 503 answers of the admin API), so ioredis internals are translated.
 */
export function describeRedisFailure(error: unknown, commandTimeoutMs: number): string {
  if (!(error instanceof Error)) return String(error);
  const { message, name } = error;
  if (message.includes('enableOfflineQueue')) return 'redis is not connected';
  if (message === 'Command timed out') return `redis did not answer within ${commandTimeoutMs} ms`;
  if (message === 'Connection is closed.' || name === 'MaxRetriesPerRequestError') {
    return 'the connection to redis was lost';
  }
  if (name === 'AbortError') return 'the connection to redis was lost';
  if (name === 'ReplyError') return `redis refused the command: ${message}`;
  return message;
}

/**
 * Maps a failed Redis call to the store's errors: a key of the wrong type is a
 * foreign or corrupt key; anything else (closed connection, timeout, LOADING,
 * READONLY, OOM...) means the store cannot serve us now.
 */
export function storeError(error: unknown, what: string, commandTimeoutMs: number): Error {
  if (error instanceof StoreCorruptError || error instanceof StoreUnavailableError) return error;
  if (isWrongType(error)) return new StoreCorruptError(`${what}: ${(error as Error).message}`);
  return new StoreUnavailableError(describeRedisFailure(error, commandTimeoutMs));
}

/** Closes a connection politely when it is up, and stops its reconnect loop in any case. */
export async function quit(redis: Redis): Promise<void> {
  if (redis.status === 'ready') {
    await redis.quit().catch(() => undefined);
  }
  redis.disconnect();
}

/** Drops a connection without reconnecting and waits until ioredis has let go of it. */
export async function disconnected(redis: Redis): Promise<void> {
  const open = ['connecting', 'connect', 'ready'].includes(redis.status);
  const ended = open
    ? new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        redis.once('end', () => {
          clearTimeout(timer);
          resolve();
        });
      })
    : Promise.resolve();
  redis.disconnect();
  await ended;
}

/** What the store hears from its connections once it has started them. */
export interface ConnectionEvents {
  /** A message on the subscribed channel. */
  message(channel: string, message: string): void;
  /** The command connection closed: the store is down until it is back. */
  commandsLost(): void;
  /** A connection is ready again: catch up on what changed while it was down. */
  ready(): void;
}

export interface RedisConnectionsOptions extends RedisConnectionSettings {
  url: string;
  /** The channel the subscriber listens on. */
  channel: string;
  logger: Logger;
  /** How long a resubscribe that failed on a live connection waits before its next try. */
  resubscribeRetryMs: number;
  events: ConnectionEvents;
}

/**
 * A store's two connections to one Redis: commands (fail fast, so an outage
 * becomes a 503 at once) and a subscriber on one channel. Each outage is
 * logged once, not at every reconnect attempt; the last socket error is kept
 * for the start-up message; a reconnected subscriber is subscribed again.
 */
export class RedisConnections {
  readonly command: Redis;
  readonly subscriber: Redis;
  /** The last socket-level error (ECONNREFUSED...), for the start-up error. */
  lastError: string | undefined;
  /** Outages are logged and events told only between watch() and close(). */
  private watching = false;
  private closed = false;

  constructor(private readonly options: RedisConnectionsOptions) {
    const redisOptions = fastFailRedisOptions(options);
    this.command = new Redis(options.url, { ...redisOptions, connectionName: 'togather-proxy' });
    this.subscriber = new Redis(options.url, {
      ...redisOptions,
      connectionName: 'togather-proxy-sub',
      // ioredis's own resubscribe leaves its promise unhandled: a connection that
      // drops again at that moment rejects it and the unhandled rejection ends
      // the process. The 'ready' handler below resubscribes instead.
      autoResubscribe: false,
    });
    this.subscriber.on('message', (channel: string, message: string) =>
      options.events.message(channel, message),
    );
    this.track('commands', this.command);
    this.track('subscriber', this.subscriber);
  }

  /** Connects both and subscribes. */
  async open(): Promise<void> {
    this.lastError = undefined;
    await Promise.all([this.command.connect(), this.subscriber.connect()]);
    await this.subscriber.subscribe(this.options.channel);
  }

  /** Drops both connections and stops their reconnects, so open() can simply be called again. */
  async drop(): Promise<void> {
    await Promise.all([disconnected(this.command), disconnected(this.subscriber)]);
  }

  /** From now on outages are logged and the events told. */
  watch(): void {
    this.watching = !this.closed;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watching = false;
    await Promise.all([quit(this.command), quit(this.subscriber)]);
  }

  private track(role: 'commands' | 'subscriber', redis: Redis): void {
    const { logger, events } = this.options;
    let lost = false;
    // Without an error listener ioredis prints every failed reconnect to the console.
    redis.on('error', (error: Error) => {
      this.lastError = error.message;
      if (!this.watching) return;
      if (lost) logger.debug({ connection: role, err: error.message }, 'redis still down');
      else logger.warn({ connection: role, err: error.message }, 'redis connection error');
    });
    redis.on('close', () => {
      if (!this.watching) return;
      if (!lost) logger.warn({ connection: role }, 'redis connection lost; reconnecting');
      lost = true;
      if (role === 'commands') events.commandsLost();
    });
    // Catch up at once on whatever changed while this connection was down.
    redis.on('ready', () => {
      this.lastError = undefined;
      if (!this.watching) return;
      if (lost) logger.info({ connection: role }, 'redis connection restored');
      lost = false;
      if (role === 'subscriber') this.resubscribe();
      events.ready();
    });
  }

  /** Subscribes a reconnected subscriber again; a failure waits for the next reconnect. */
  private resubscribe(): void {
    this.subscriber.subscribe(this.options.channel).catch((error: unknown) => {
      this.options.logger.debug(
        {
          err: describeRedisFailure(
            error,
            this.options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
          ),
        },
        'redis resubscribe failed; retrying',
      );
      // A connection that stays up (the command timed out) gets another try;
      // a dropped one resubscribes on its next 'ready'.
      if (this.closed || this.subscriber.status !== 'ready') return;
      setTimeout(() => {
        if (!this.closed && this.subscriber.status === 'ready') this.resubscribe();
      }, this.options.resubscribeRetryMs).unref();
    });
  }
}
