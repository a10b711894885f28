import type { Logger } from 'pino';

/**
 * The listeners of one kind of event (a new slot state, the store's
 * availability, a change of the registry). Every listener hears every event:
 * one that throws is logged and the rest still run. A listener's bug (a
 * metric, a relay, a log line) must neither keep the state from the other
 * listeners nor fail the write that announced it (a switch that was written
 * would otherwise answer 500).
 */
export class ListenerList<Args extends unknown[]> {
  private readonly listeners: Array<(...args: Args) => void> = [];

  /**
   * `what` names the event in the log line. Without a logger a failure is a
   * process warning (on stderr), so that it is never silent.
   */
  constructor(
    private readonly what: string,
    private readonly logger?: Pick<Logger, 'error'>,
  ) {}

  add(listener: (...args: Args) => void): void {
    this.listeners.push(listener);
  }

  emit(...args: Args): void {
    for (const listener of this.listeners) {
      try {
        listener(...args);
      } catch (error) {
        this.failed(error);
      }
    }
  }

  private failed(error: unknown): void {
    const message = `a ${this.what} listener failed`;
    if (this.logger !== undefined) {
      this.logger.error({ err: error }, message);
      return;
    }
    process.emitWarning(error instanceof Error ? error : String(error), {
      type: 'ListenerFailure',
      detail: message,
    });
  }
}
