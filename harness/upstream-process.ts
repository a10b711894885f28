/**
 * The benchmark's bare node:http app slot (bench/upstream.ts, built with the
 * CLI) as its own process on a loopback port: the upstream the benchmarks
 * measure through, and the slot a test kills like a crash would (SIGKILL)
 * and starts again on the same port. Paths: `/small` (JSON naming the slot),
 * `/64k`, `/1m`, `/health` and the others of bench/upstream.ts.
 */
import { builtFile } from './built-files.js';
import { launch, type Launch, type WatchedProcess } from './child-process.js';
import { freePort, waitForPort } from './ports.js';

export interface UpstreamOptions {
  /** Listen on this port; a free one by default. */
  port?: number;
  /** Another built upstream script (the soak's, with WebSockets); bench/upstream.js by default. */
  script?: string;
  launch?: Launch;
}

export class UpstreamProcess {
  private child: WatchedProcess | undefined;
  private alive = false;

  private constructor(
    readonly slot: string,
    readonly port: number,
    private readonly options: UpstreamOptions,
  ) {}

  /** A started upstream for `slot`. */
  static async start(slot: string, options: UpstreamOptions = {}): Promise<UpstreamProcess> {
    const upstream = UpstreamProcess.on(slot, options.port ?? (await freePort()), options);
    await upstream.start();
    return upstream;
  }

  /** An upstream for `slot` on `port`, not started yet. */
  static on(slot: string, port: number, options: UpstreamOptions = {}): UpstreamProcess {
    return new UpstreamProcess(slot, port, options);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The child last started (still there to read after a stop). */
  get process(): WatchedProcess {
    if (!this.child) throw new Error(`upstream ${this.slot} was never started`);
    return this.child;
  }

  /** Starts it (again, on the same port) unless it runs. */
  async start(): Promise<void> {
    if (this.alive) return;
    this.child = (this.options.launch ?? launch)(
      `upstream-${this.slot}`,
      process.execPath,
      [this.options.script ?? builtFile('bench/upstream.js')],
      { UPSTREAM_PORT: String(this.port), UPSTREAM_SLOT: this.slot },
    );
    this.alive = true;
    await this.child.waitFor(/"upstream":"listening"/);
    await waitForPort(this.port);
  }

  /** SIGKILL: the slot's sockets are closed by the kernel mid-request. */
  kill(): Promise<void> {
    return this.end('SIGKILL');
  }

  async stop(): Promise<void> {
    return this.end('SIGTERM');
  }

  private async end(signal: NodeJS.Signals): Promise<void> {
    if (!this.alive) return;
    this.alive = false;
    await this.child?.stop(signal);
  }
}
