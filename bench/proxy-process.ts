/**
 * Our proxy, driven only through its outside contract (docs/architecture.md): the built
 * CLI `togather proxy` as a child process, configured by environment, switched
 * through the admin API.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { httpRequest, keepAliveAgent, pollUntil } from './http-client.js';
import { freePort, waitForPort } from '../harness/ports.js';
import { processTree } from './proc.js';
import { makeTempDir, startProcess, type ManagedProcess } from './processes.js';

const CLI = fileURLToPath(new URL('../cli/togather.js', import.meta.url));

/** Whether the built CLI has the `proxy` command yet; the reason when not. */
export function proxyUnavailableReason(): string | undefined {
  const result = spawnSync(process.execPath, [CLI, 'proxy', '--help'], { encoding: 'utf8' });
  if (result.error) return result.error.message;
  // Without the command, commander answers `proxy --help` with the top-level help (exit 0).
  if (result.status !== 0 || !/Usage: togather proxy/.test(result.stdout))
    return 'the built CLI has no `togather proxy` command yet (build the proxy: npm run build)';
  return undefined;
}

export interface ProxyOptions {
  name: string;
  blueUrl: string;
  greenUrl: string;
  /** Redis store when set, else a file store in a temp dir. */
  redisUrl?: string;
  redisKeyPrefix?: string;
  workers?: number;
  drainTimeout?: string;
  /** Run under `node --cpu-prof`, writing the profile (one per process) into this directory. */
  cpuProfileDir?: string;
  /** A TLS listener too (PROXY_TLS_PORT, a free port) serving this certificate; plain HTTP is not redirected. */
  tls?: { certFile: string; keyFile: string };
  /** The built CLI to run (another build's dist/cli/togather.js, for A/B runs); this build's by default. */
  cli?: string;
  /** Node flags before the script (e.g. `--max-semi-space-size=16`). */
  nodeArgs?: string[];
  /** Variables added to (or overriding) the proxy's environment, set last (e.g. COMPRESSION=off). */
  env?: NodeJS.ProcessEnv;
}

export interface SwitchAnswer {
  status: number;
  body: string;
  /** performance.now() when the request was sent and when the answer's headers arrived. */
  sentAt: number;
  answeredAt: number;
}

export interface ProxyProcess {
  name: string;
  port: number;
  adminPort: number;
  url: string;
  /** https://127.0.0.1:<port> when started with `tls`. */
  tlsUrl?: string;
  process: ManagedProcess;
  /** The proxy process and its workers, for CPU and memory readings. */
  pids(): number[];
  switchTo(slot: string): Promise<SwitchAnswer>;
  /** GET /admin/status, parsed. */
  status(): Promise<Record<string, unknown>>;
  /**
   * V8 heap in use in the proxy's main process (nodejs_heap_size_used_bytes
   * of its /metrics), bytes; NaN when unreadable.
   */
  heapUsed(): Promise<number>;
  stop(): Promise<void>;
}

export async function startProxy(options: ProxyOptions): Promise<ProxyProcess> {
  const port = await freePort();
  const adminPort = await freePort();
  const adminKey = randomBytes(24).toString('hex');
  const env: NodeJS.ProcessEnv = {
    PROXY_HOST: '127.0.0.1',
    PROXY_PORT: String(port),
    ADMIN_HOST: '127.0.0.1',
    ADMIN_PORT: String(adminPort),
    ADMIN_API_KEY: adminKey,
    BLUE_URL: options.blueUrl,
    GREEN_URL: options.greenUrl,
    HEALTH_PATH: '/health',
    ACCESS_LOG: 'off',
    LOG_LEVEL: 'warn',
    DRAIN_TIMEOUT: options.drainTimeout ?? '5s',
    PROXY_WORKERS: String(options.workers ?? 1),
  };
  const tlsPort = options.tls ? await freePort() : undefined;
  if (options.tls) {
    env.PROXY_TLS_PORT = String(tlsPort);
    env.TLS_CERT_FILE = options.tls.certFile;
    env.TLS_KEY_FILE = options.tls.keyFile;
    env.HTTPS_REDIRECT = 'off';
  }
  Object.assign(env, options.env);
  if (options.redisUrl) {
    env.REDIS_URL = options.redisUrl;
    env.REDIS_KEY_PREFIX = options.redisKeyPrefix ?? 'togather-bench:';
  } else {
    env.STATE_FILE = join(makeTempDir(`proxy-${options.name}`), 'proxy-state.json');
  }
  const profiling = options.cpuProfileDir
    ? ['--cpu-prof', '--cpu-prof-dir', options.cpuProfileDir]
    : [];
  const child = startProcess(
    `proxy-${options.name}`,
    process.execPath,
    [...(options.nodeArgs ?? []), ...profiling, options.cli ?? CLI, 'proxy'],
    env,
  );
  const agent = keepAliveAgent();
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  const auth = { authorization: `Bearer ${adminKey}` };
  try {
    const ready = await Promise.race([
      pollUntil(agent, `${adminUrl}/healthz`, (a) => a.status === 200, 20_000),
      child.exited.then(() => undefined),
    ]);
    if (!ready) throw new Error('admin /healthz did not answer 200 in 20 s (or the proxy exited)');
    await waitForPort(port);
    if (tlsPort !== undefined) await waitForPort(tlsPort);
  } catch (error) {
    await child.stop();
    throw new Error(`proxy ${options.name} did not start: ${String(error)}\n${child.output()}`);
  }
  return {
    name: options.name,
    port,
    adminPort,
    url: `http://127.0.0.1:${port}`,
    tlsUrl: tlsPort === undefined ? undefined : `https://127.0.0.1:${tlsPort}`,
    process: child,
    pids: () => processTree(child.pid),
    async switchTo(slot: string) {
      const sentAt = performance.now();
      const answer = await httpRequest(
        agent,
        'POST',
        `${adminUrl}/admin/switch?slot=${slot}`,
        auth,
      );
      return { status: answer.status, body: answer.body, sentAt, answeredAt: answer.headersAt };
    },
    async status() {
      const answer = await httpRequest(agent, 'GET', `${adminUrl}/admin/status`, auth);
      if (answer.status !== 200)
        throw new Error(`/admin/status answered ${answer.status}: ${answer.body}`);
      return JSON.parse(answer.body) as Record<string, unknown>;
    },
    async heapUsed() {
      try {
        const answer = await httpRequest(agent, 'GET', `${adminUrl}/metrics`);
        const line = answer.body
          .split('\n')
          .find((l) => l.startsWith('nodejs_heap_size_used_bytes '));
        return line === undefined ? Number.NaN : Number(line.split(' ')[1]);
      } catch {
        return Number.NaN;
      }
    },
    async stop() {
      agent.destroy();
      await child.stop('SIGTERM', 20_000);
    },
  };
}
