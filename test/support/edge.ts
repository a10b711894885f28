import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Registry } from 'prom-client';
import { createLogger } from '../../common/logger.js';
import { loadProxyConfig } from '../../proxy/config.js';
import { FileSlotStore } from '../../proxy/state/file-store.js';
import { ProxyMetrics } from '../../proxy/metrics.js';
import { createEdgeProxy, type EdgeProxy } from '../../proxy/edge/edge-proxy.js';
import type { Slot } from '../../common/slot.js';
import type { SlotState } from '../../proxy/state/slot-state.js';
import { valueOf } from './wait.js';

export const TEST_ADMIN_KEY = 'test-admin-key-0123456789abcdefghijklmnop';

/** Every pino line written by the code under test, parsed. */
export class LogCapture {
  readonly lines: Array<Record<string, unknown>> = [];
  readonly stream = new Writable({
    write: (chunk: Buffer, _encoding, done) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() !== '') this.lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });

  find(predicate: (line: Record<string, unknown>) => boolean): Record<string, unknown> | undefined {
    return this.lines.find(predicate);
  }

  async waitFor(
    predicate: (line: Record<string, unknown>) => boolean,
    timeoutMs = 15_000,
  ): Promise<Record<string, unknown>> {
    try {
      return await valueOf(() => this.find(predicate), { timeout: timeoutMs, interval: 20 });
    } catch {
      throw new Error(`no matching log line within ${timeoutMs} ms:\n${this.dump()}`);
    }
  }

  dump(): string {
    return this.lines.map((line) => JSON.stringify(line)).join('\n');
  }
}

export interface TestEdge {
  edge: EdgeProxy;
  url: string;
  port: number;
  store: FileSlotStore;
  metrics: ProxyMetrics;
  logs: LogCapture;
  /** The temp dir holding the state file (removed by stop() unless passed in). */
  dir: string;
  /** Switches the way the switch service does: compare-and-set on the store, then apply. */
  switchTo(slot: Slot, actor?: string): Promise<SlotState>;
  /** Closes the edge (and the store); removes the temp dir it created. */
  stop(): Promise<void>;
}

export interface TestEdgeOptions {
  blueUrl: string;
  greenUrl: string;
  /** Proxy variables on top of the test defaults (ACCESS_LOG, DRAIN_TIMEOUT...). */
  env?: Record<string, string>;
  /** Reuse a state directory (a restart); not removed by stop(). */
  dir?: string;
}

/** The edge proxy in-process with a file store in a temp dir, listening on a free port. */
export async function startTestEdge(options: TestEdgeOptions): Promise<TestEdge> {
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'togather-edge-')));
  const config = loadProxyConfig({
    ADMIN_API_KEY: TEST_ADMIN_KEY,
    PROXY_HOST: '127.0.0.1',
    PROXY_PORT: '0',
    BLUE_URL: options.blueUrl,
    GREEN_URL: options.greenUrl,
    STATE_FILE: join(dir, 'proxy-state.json'),
    ...options.env,
  });
  const logs = new LogCapture();
  const logger = createLogger({ level: 'debug', destination: logs.stream });
  const store = new FileSlotStore({ stateFile: config.STATE_FILE, logger });
  const metrics = new ProxyMetrics(new Registry(), { processMetrics: false });
  const edge = await createEdgeProxy({ config, store, logger, metrics });
  const address = await edge.listen();
  const url = `http://127.0.0.1:${address.port}`;
  return {
    edge,
    url,
    port: address.port,
    store,
    metrics,
    logs,
    dir,
    async switchTo(slot, actor = 'test') {
      const current = edge.registry.current;
      const next: SlotState = {
        active: slot,
        previous: current.active,
        epoch: current.epoch + 1,
        switched_at: new Date().toISOString(),
        actor,
      };
      const result = await store.compareAndSet(current.epoch, next);
      if (!result.ok) throw new Error(`switch to ${slot} lost to epoch ${result.state.epoch}`);
      edge.registry.apply(result.state);
      return result.state;
    },
    async stop() {
      await edge.close(5000);
      await store.close();
      if (ownDir) await rm(dir, { recursive: true, force: true });
    },
  };
}
