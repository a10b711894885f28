import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../common/logger.js';
import { loadProxyConfig } from '../../proxy/config.js';
import { startProxy, type RunningProxy } from '../../proxy/main.js';
import { LogCapture, TEST_ADMIN_KEY } from './edge.js';

export interface TestProxy {
  proxy: RunningProxy;
  /** The temp dir holding the state file. */
  dir: string;
  stateFile: string;
  logs: LogCapture;
  /** One admin API call with the test key; `body` is the parsed JSON answer. */
  admin(method: string, path: string): Promise<{ status: number; text: string; body: unknown }>;
  /** Closes the proxy and removes its temp dir. */
  stop(): Promise<void>;
}

/**
 * The whole proxy in this process (`startProxy(loadProxyConfig(…))`) on a
 * file store in a temp dir, both listeners on free loopback ports and every
 * log line captured. `env` names the slots and anything else to set.
 */
export async function startTestProxy(
  env: { BLUE_URL: string; GREEN_URL: string } & Record<string, string>,
): Promise<TestProxy> {
  const dir = await mkdtemp(join(tmpdir(), 'togather-proxy-'));
  const stateFile = join(dir, 'proxy-state.json');
  const logs = new LogCapture();
  const config = loadProxyConfig({
    ADMIN_API_KEY: TEST_ADMIN_KEY,
    PROXY_HOST: '127.0.0.1',
    PROXY_PORT: '0',
    ADMIN_PORT: '0',
    STATE_FILE: stateFile,
    ...env,
  });
  let proxy: RunningProxy;
  try {
    proxy = await startProxy(config, {
      logger: createLogger({ level: 'debug', destination: logs.stream }),
      healthPollIntervalMs: 200,
    });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    proxy,
    dir,
    stateFile,
    logs,
    async admin(method, path) {
      const response = await fetch(`${proxy.adminUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${TEST_ADMIN_KEY}` },
      });
      const text = await response.text();
      return { status: response.status, text, body: JSON.parse(text) as unknown };
    },
    async stop() {
      await proxy.close(1000);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
