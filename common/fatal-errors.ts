import type { Logger } from 'pino';

/**
 * For a long-running process (proxy, cluster worker, app): an exception or a
 * rejected promise nobody handled means its state can no longer be trusted,
 * so it exits with 1 as Node would, but first says why in its own structured
 * log, where an operator's log pipeline looks (Node's default is a stack
 * trace on stderr). Its supervisor (compose, systemd, the cluster primary)
 * starts it again from the stored slot state.
 */
export function exitOnFatalErrors(logger: Logger): void {
  const fatal = (kind: string) => (error: unknown) => {
    try {
      logger.fatal({ err: error }, `${kind}: exiting`);
    } finally {
      process.exit(1);
    }
  };
  process.on('uncaughtException', fatal('uncaught exception'));
  process.on('unhandledRejection', fatal('unhandled promise rejection'));
}
