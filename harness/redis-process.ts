/**
 * A private redis-server on a loopback port, without persistence, which a
 * test or the soak may kill (an outage: the state is gone when it comes
 * back) and start again on the same port.
 */
import { launch, type Launch, type WatchedProcess } from './child-process.js';
import { freePort, waitForPort } from './ports.js';

export class RedisProcess {
  private child: WatchedProcess | undefined;

  private constructor(
    readonly port: number,
    private readonly start: Launch,
  ) {}

  /** A started server on a free port. */
  static async start(options: { launch?: Launch } = {}): Promise<RedisProcess> {
    const redis = new RedisProcess(await freePort(), options.launch ?? launch);
    await redis.restart();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /** (Re)starts the server on the same port unless it runs. */
  async restart(): Promise<void> {
    if (this.child) return;
    const args = ['--port', String(this.port), '--bind', '127.0.0.1'];
    const child = this.start(
      'redis-server',
      'redis-server',
      [...args, '--save', '', '--appendonly', 'no'],
      {},
    );
    this.child = child;
    try {
      await waitForPort(this.port);
    } catch (error) {
      this.child = undefined;
      await child.stop('SIGKILL');
      throw new Error(`redis-server did not start: ${String(error)}\n${child.output()}`);
    }
  }

  /** Kills the server at once (SIGKILL), as an outage would. */
  kill(): Promise<void> {
    return this.end('SIGKILL');
  }

  async stop(): Promise<void> {
    return this.end('SIGTERM');
  }

  private async end(signal: NodeJS.Signals): Promise<void> {
    const running = this.child;
    this.child = undefined;
    if (running) await running.stop(signal);
  }
}
