import { spawn } from 'node:child_process';
import { freePort, waitForPort } from '../../harness/ports.js';
import { WatchedProcess } from '../../harness/child-process.js';

/** A private redis-server on a free loopback port, which a test may kill and restart. */
export class TestRedis {
  private process: WatchedProcess | undefined;

  private constructor(readonly port: number) {}

  static async start(): Promise<TestRedis> {
    const redis = new TestRedis(await freePort());
    await redis.restart();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.process !== undefined;
  }

  /** (Re)starts the server on the same port; no persistence. */
  async restart(): Promise<void> {
    if (this.process) return;
    const child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.process = new WatchedProcess('redis-server', child);
    await waitForPort(this.port);
  }

  /** Kills the server at once (SIGKILL), as an outage would. */
  async kill(): Promise<void> {
    const running = this.process;
    this.process = undefined;
    if (running) await running.stop('SIGKILL');
  }

  async stop(): Promise<void> {
    const running = this.process;
    this.process = undefined;
    if (running) await running.stop('SIGTERM');
  }
}
