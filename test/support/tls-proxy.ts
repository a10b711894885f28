import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../common/logger.js';
import { loadProxyConfig } from '../../proxy/config.js';
import { startProxy, type RunningProxy } from '../../proxy/main.js';
import type { Slot } from '../../proxy/state/slot-state.js';
import { LogCapture, TEST_ADMIN_KEY } from './edge.js';
import { selfSigned } from './pebble.js';

export interface TlsProxy {
  proxy: RunningProxy;
  /** https://127.0.0.1:<port> */
  tlsUrl: string;
  tlsPort: number;
  publicUrl: string;
  /** The self-signed certificate served (for localhost and 127.0.0.1): what clients trust. */
  ca: string;
  logs: LogCapture;
  /** Switches through the switch service (health gate skipped). */
  switchTo(slot: Slot): Promise<void>;
  /** GET on the admin listener with the key. */
  admin(path: string): Promise<{ status: number; text: string; json: unknown }>;
  stop(): Promise<void>;
}

/**
 * `startProxy(loadProxyConfig(…))` in this process with TLS_CERT_FILE set to
 * a fresh self-signed certificate, every listener on a free loopback port,
 * logging at debug level into `logs`.
 */
export async function startTlsProxy(
  slots: { blueUrl: string; greenUrl: string },
  env: Record<string, string> = {},
): Promise<TlsProxy> {
  const dir = await mkdtemp(join(tmpdir(), 'togather-tls-proxy-'));
  try {
    const pair = await selfSigned(dir, 'localhost');
    const ca = await readFile(pair.certFile, 'utf8');
    const logs = new LogCapture();
    const config = loadProxyConfig({
      ADMIN_API_KEY: TEST_ADMIN_KEY,
      PROXY_HOST: '127.0.0.1',
      PROXY_PORT: '0',
      PROXY_TLS_PORT: '0',
      ADMIN_PORT: '0',
      BLUE_URL: slots.blueUrl,
      GREEN_URL: slots.greenUrl,
      STATE_FILE: join(dir, 'proxy-state.json'),
      TLS_CERT_FILE: pair.certFile,
      TLS_KEY_FILE: pair.keyFile,
      DRAIN_TIMEOUT: '5s',
      ...env,
    });
    const proxy = await startProxy(config, {
      logger: createLogger({ level: 'debug', destination: logs.stream }),
      healthPollIntervalMs: 60_000,
    });
    const tlsUrl = proxy.tlsUrl!;
    return {
      proxy,
      tlsUrl,
      tlsPort: Number(new URL(tlsUrl).port),
      publicUrl: proxy.publicUrl,
      ca,
      logs,
      async switchTo(slot) {
        const outcome = await proxy.control.switches.switch(slot, { force: true, actor: 'test' });
        if (!outcome.ok) throw new Error(`switch to ${slot} refused: ${JSON.stringify(outcome)}`);
      },
      async admin(path) {
        const response = await fetch(`${proxy.adminUrl}${path}`, {
          headers: { authorization: `Bearer ${TEST_ADMIN_KEY}` },
        });
        const text = await response.text();
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        return { status: response.status, text, json };
      },
      async stop() {
        await proxy.close(2000);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
