import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Lifecycle } from './lifecycle.js';

export interface ShutdownDeps {
  app: FastifyInstance;
  lifecycle: Lifecycle;
  logger: Logger;
  /** How long requests in flight may take to finish (GRACEFUL_SHUTDOWN_TIMEOUT_SECONDS). */
  timeoutMs: number;
  /** Releases what the app used (the database), after the listener is closed. */
  release: () => Promise<void>;
}

export interface Shutdown {
  /** Drains and closes; resolves to the exit code (0 drained, 1 requests had to be cut). */
  shutdown(reason: string): Promise<number>;
  readonly started: boolean;
}

/**
 * Graceful shutdown in three steps:
 * 1. draining starts: /health and /readyz answer 503 {"status":"shutting_down"}
 *    while the listener stays open, so probes see it at once and every
 *    response carries `Connection: close`;
 * 2. requests in flight finish, up to timeoutMs;
 * 3. the listener closes, idle keep-alive sockets are closed (Fastify's
 *    forceCloseConnections: 'idle'), any left past the deadline are cut,
 *    then the database is released.
 */
export function createShutdown(deps: ShutdownDeps): Shutdown {
  let running: Promise<number> | undefined;
  const run = async (reason: string): Promise<number> => {
    const { app, lifecycle, logger } = deps;
    const deadline = Date.now() + deps.timeoutMs;
    lifecycle.startDraining();
    logger.info(
      { reason, inflight: lifecycle.inflight, timeout_ms: deps.timeoutMs },
      'shutting down: draining requests in flight',
    );
    let drained = await lifecycle.whenIdle(deps.timeoutMs);
    const closing = app.close();
    const closedInTime = await Promise.race([
      closing.then(() => true),
      new Promise<boolean>((resolve) =>
        setTimeout(() => resolve(false), Math.max(0, deadline - Date.now())).unref(),
      ),
    ]);
    if (!drained || !closedInTime) {
      drained = false;
      logger.warn(
        { inflight: lifecycle.inflight },
        'grace period over: closing connections with requests still in flight',
      );
      app.server.closeAllConnections();
      await closing;
    }
    try {
      await deps.release();
    } catch (error) {
      logger.error({ err: error }, 'releasing resources failed');
    }
    logger.info({ drained }, 'shut down');
    return drained ? 0 : 1;
  };
  return {
    shutdown(reason) {
      running ??= run(reason);
      return running;
    },
    get started() {
      return running !== undefined;
    },
  };
}

/**
 * SIGTERM or SIGINT starts the shutdown, then exits with its code; a second
 * signal exits at once (1), for an operator who does not want to wait.
 */
export function exitOnSignals(
  shutdown: Shutdown,
  logger: Logger,
  exit: (code: number) => void = (code) => process.exit(code),
): void {
  const onSignal = (signal: NodeJS.Signals) => {
    if (shutdown.started) {
      logger.warn({ signal }, 'second signal: exiting without waiting');
      exit(1);
      return;
    }
    void shutdown.shutdown(signal).then(exit, (error: unknown) => {
      logger.error({ err: error }, 'shutdown failed');
      exit(1);
    });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
