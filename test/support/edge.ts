import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '../../common/logger.js';
import { loadProxyConfig } from '../../proxy/config.js';
import type { EdgeProxy } from '../../proxy/edge/edge-proxy.js';
import { startProxy, type RunningProxy } from '../../proxy/main.js';
import type { Slot } from '../../common/slot.js';
import type { SlotState } from '../../proxy/state/slot-state.js';
import { FakeSlot, type FakeSlotName, type FakeSlotOptions } from './fake-slot.js';
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

export interface AdminAnswer {
  status: number;
  text: string;
  /** The answer parsed as JSON, or undefined when it is not JSON. */
  body: unknown;
}

export interface TestEdge {
  /** The whole proxy, as `togather proxy` runs it: data plane, control plane, store. */
  proxy: RunningProxy;
  /** The data plane (`proxy.edge`). */
  edge: EdgeProxy;
  /** The public listener. */
  url: string;
  port: number;
  /** The admin listener (key: TEST_ADMIN_KEY unless env says otherwise). */
  adminUrl: string;
  logs: LogCapture;
  /** The temp dir holding the state file (removed by stop() unless passed in). */
  dir: string;
  stateFile: string;
  /** One admin API request with the key. */
  admin(method: string, path: string): Promise<AdminAnswer>;
  /** The text of the admin listener's /metrics. */
  metrics(): Promise<string>;
  /**
   * Switches through the proxy's switch service (as POST /admin/switch with
   * force: the health gate skipped, so a test may switch to a slot that is
   * down); returns the state written.
   */
  switchTo(slot: Slot, actor?: string): Promise<SlotState>;
  /** Closes the proxy (requests in flight get `timeoutMs`, 5 s); removes the temp dir it created. */
  stop(timeoutMs?: number): Promise<void>;
}

export interface TestEdgeOptions {
  blueUrl: string;
  greenUrl: string;
  /** Proxy variables on top of the test defaults (ACCESS_LOG, DRAIN_TIMEOUT, REDIS_URL...). */
  env?: Record<string, string>;
  /** Reuse a state directory (a restart); not removed by stop(). */
  dir?: string;
  /**
   * The health poll of both slots for /admin/status. Ten minutes by default:
   * only the start-up probe of each slot runs during a test, so a slot sees
   * no health request the test did not cause.
   */
  healthPollIntervalMs?: number;
}

/**
 * The proxy in this process, `startProxy(loadProxyConfig(…))` as the CLI
 * runs it, on a file store in a temp dir (unless env sets REDIS_URL), both
 * listeners on free loopback ports, every log line captured in `logs`.
 */
export async function startTestEdge(options: TestEdgeOptions): Promise<TestEdge> {
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'togather-edge-')));
  const stateFile = join(dir, 'proxy-state.json');
  const logs = new LogCapture();
  let proxy: RunningProxy;
  let key: string;
  try {
    const config = loadProxyConfig({
      ADMIN_API_KEY: TEST_ADMIN_KEY,
      PROXY_HOST: '127.0.0.1',
      PROXY_PORT: '0',
      ADMIN_PORT: '0',
      BLUE_URL: options.blueUrl,
      GREEN_URL: options.greenUrl,
      STATE_FILE: stateFile,
      ...options.env,
    });
    key = config.ADMIN_API_KEY;
    proxy = await startProxy(config, {
      logger: createLogger({ level: 'debug', destination: logs.stream }),
      healthPollIntervalMs: options.healthPollIntervalMs ?? 600_000,
    });
  } catch (error) {
    if (ownDir) await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const admin = async (method: string, path: string): Promise<AdminAnswer> => {
    const response = await fetch(`${proxy.adminUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}` },
    });
    const text = await response.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: response.status, text, body };
  };
  return {
    proxy,
    edge: proxy.edge,
    url: proxy.publicUrl,
    port: Number(new URL(proxy.publicUrl).port),
    adminUrl: proxy.adminUrl,
    logs,
    dir,
    stateFile,
    admin,
    async metrics() {
      const answer = await admin('GET', '/metrics');
      if (answer.status !== 200)
        throw new Error(`/metrics answered ${answer.status}: ${answer.text}`);
      return answer.text;
    },
    async switchTo(slot, actor = 'test') {
      const outcome = await proxy.control.switches.switch(slot, { force: true, actor });
      if (!outcome.ok) throw new Error(`switch to ${slot} refused: ${outcome.message}`);
      return outcome.state;
    },
    async stop(timeoutMs = 5000) {
      await proxy.close(timeoutMs);
      if (ownDir) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Two fake slots and an edge in front of them, stopped together. */
export type SlotsAndEdge = Omit<TestEdge, 'stop'> & {
  blue: FakeSlot;
  green: FakeSlot;
  /** Stops the edge, then both slots. */
  close(): Promise<void>;
};

export interface SlotsAndEdgeOptions extends Pick<TestEdgeOptions, 'env' | 'healthPollIntervalMs'> {
  /** Options of one fake (`{ wire: 'raw' }`, `{ tls }`...). */
  blue?: FakeSlotOptions;
  green?: FakeSlotOptions;
  /**
   * What the proxy is told instead of a fake's own URL: a slot URL with a
   * path (from the fake's), or a port nothing listens on (the fake then
   * gets no traffic).
   */
  urls?: Partial<Record<FakeSlotName, string | ((fake: FakeSlot) => string)>>;
}

/**
 * The repeated setup of the edge suites: blue and green fakes on free
 * ports and an edge whose slots they are; `blue` is active. Use it from
 * beforeAll (and `close()` from afterAll) or per test.
 */
export async function twoSlotsAndEdge(options: SlotsAndEdgeOptions = {}): Promise<SlotsAndEdge> {
  const [blue, green] = await Promise.all([
    FakeSlot.start('blue', options.blue),
    FakeSlot.start('green', options.green),
  ]);
  const urlOf = (fake: FakeSlot): string => {
    const url = options.urls?.[fake.slot];
    return typeof url === 'function' ? url(fake) : (url ?? fake.url);
  };
  let edge: TestEdge;
  try {
    edge = await startTestEdge({
      blueUrl: urlOf(blue),
      greenUrl: urlOf(green),
      env: options.env,
      healthPollIntervalMs: options.healthPollIntervalMs,
    });
  } catch (error) {
    await Promise.all([blue.close(), green.close()]);
    throw error;
  }
  const { stop, ...rest } = edge;
  return {
    ...rest,
    blue,
    green,
    async close() {
      await stop();
      await Promise.all([blue.close(), green.close()]);
    },
  };
}
