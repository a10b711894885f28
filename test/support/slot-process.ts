import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { waitForPort } from '../../harness/ports.js';
import { WatchedProcess } from '../../harness/child-process.js';

/** The benchmark's bare node:http slot (bench/upstream.ts), built with the CLI. */
const SLOT_SCRIPT = fileURLToPath(new URL('../../dist/bench/upstream.js', import.meta.url));

/**
 * An app slot as its own process, so a test can kill it like a crash would
 * (SIGKILL) and start it again on the same port. Paths: `/small` (200 JSON
 * naming the slot), `/health`, anything else 404.
 */
export class SlotProcess {
  private running: WatchedProcess | undefined;

  constructor(
    readonly slot: string,
    readonly port: number,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (this.running) return;
    const child = spawn(process.execPath, [SLOT_SCRIPT], {
      env: {
        PATH: process.env.PATH ?? '',
        UPSTREAM_PORT: String(this.port),
        UPSTREAM_SLOT: this.slot,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.running = new WatchedProcess('slot', child);
    await this.running.waitFor(/"upstream":"listening"/);
    await waitForPort(this.port);
  }

  /** SIGKILL: the slot's sockets are closed by the kernel mid-request. */
  async kill(): Promise<void> {
    const running = this.running;
    this.running = undefined;
    if (running) await running.stop('SIGKILL');
  }

  async stop(): Promise<void> {
    const running = this.running;
    this.running = undefined;
    if (running) await running.stop('SIGTERM');
  }
}
