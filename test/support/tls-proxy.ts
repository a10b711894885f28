import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunningProxy } from '../../proxy/main.js';
import type { Slot } from '../../common/slot.js';
import { startTestEdge, type LogCapture } from './edge.js';
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
 * The test edge (startTestEdge: `startProxy(loadProxyConfig(…))` in this
 * process) with TLS_CERT_FILE set to a fresh self-signed certificate and
 * its TLS listener on a free loopback port too.
 */
export async function startTlsProxy(
  slots: { blueUrl: string; greenUrl: string },
  env: Record<string, string> = {},
): Promise<TlsProxy> {
  const dir = await mkdtemp(join(tmpdir(), 'togather-tls-proxy-'));
  try {
    const pair = await selfSigned(dir, 'localhost');
    const ca = await readFile(pair.certFile, 'utf8');
    const edge = await startTestEdge({
      ...slots,
      dir,
      env: {
        PROXY_TLS_PORT: '0',
        TLS_CERT_FILE: pair.certFile,
        TLS_KEY_FILE: pair.keyFile,
        DRAIN_TIMEOUT: '5s',
        ...env,
      },
      healthPollIntervalMs: 60_000,
    });
    const tlsUrl = edge.proxy.tlsUrl!;
    return {
      proxy: edge.proxy,
      tlsUrl,
      tlsPort: Number(new URL(tlsUrl).port),
      publicUrl: edge.url,
      ca,
      logs: edge.logs,
      async switchTo(slot) {
        await edge.switchTo(slot);
      },
      async admin(path) {
        const { status, text, body } = await edge.admin('GET', path);
        return { status, text, json: body };
      },
      async stop() {
        await edge.stop(2000);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
