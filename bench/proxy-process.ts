/**
 * Our proxy as the benchmarks run it: the harness's `togather proxy` child
 * (harness/proxy-process.ts) with the benchmark's settings (no access log,
 * warnings only, a random admin key, its children registered for cleanup),
 * plus the readings the figures need (process tree, heap).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { BUILT_CLI as CLI } from '../harness/built-files.js';
import { ProxyProcess as HarnessProxy } from '../harness/proxy-process.js';
import { PROXY_NODE_FLAGS } from '../proxy/heap-tuning.js';
import { processTree } from './proc.js';
import { makeTempDir, startProcess } from './processes.js';

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
  /**
   * Node flags before the script (e.g. `--max-semi-space-size=16`), exactly
   * these; by default the flags every deployed proxy starts with
   * (PROXY_NODE_FLAGS), so the figures are those of the proxy as shipped.
   */
  nodeArgs?: string[];
  /** Variables added to (or overriding) the proxy's environment, set last (e.g. COMPRESSION=off). */
  env?: Record<string, string>;
}

export interface ProxyProcess extends HarnessProxy {
  name: string;
  /** The proxy process and its workers, for CPU and memory readings. */
  pids(): number[];
  /**
   * V8 heap in use in the proxy's main process (nodejs_heap_size_used_bytes
   * of its /metrics), bytes; NaN when unreadable.
   */
  heapUsed(): Promise<number>;
}

export async function startProxy(options: ProxyOptions): Promise<ProxyProcess> {
  const profiling = options.cpuProfileDir
    ? ['--cpu-prof', '--cpu-prof-dir', options.cpuProfileDir]
    : [];
  const proxy = await HarnessProxy.start({
    name: `proxy-${options.name}`,
    blueUrl: options.blueUrl,
    greenUrl: options.greenUrl,
    redisUrl: options.redisUrl,
    keyPrefix: options.redisKeyPrefix ?? 'togather-bench:',
    stateDir: options.redisUrl ? undefined : makeTempDir(`proxy-${options.name}`),
    adminKey: randomBytes(24).toString('hex'),
    tls: options.tls,
    cli: options.cli ?? CLI,
    nodeArgs: [...(options.nodeArgs ?? PROXY_NODE_FLAGS), ...profiling],
    launch: startProcess,
    keepAlive: true,
    actor: 'bench',
    stopGraceMs: 20_000,
    env: {
      HEALTH_PATH: '/health',
      ACCESS_LOG: 'off',
      LOG_LEVEL: 'warn',
      DRAIN_TIMEOUT: options.drainTimeout ?? '5s',
      SHUTDOWN_TIMEOUT: '30s', // the proxy's own default: the benchmarks wait for a full drain
      PROXY_WORKERS: String(options.workers ?? 1),
      ...options.env,
    },
  });
  // The scenarios hand `stop` and `pids` around as plain functions.
  return Object.assign(proxy, {
    name: options.name,
    stop: proxy.stop.bind(proxy),
    pids: () => processTree(proxy.pid),
    heapUsed: async () => {
      try {
        return (await proxy.metric('nodejs_heap_size_used_bytes')) ?? Number.NaN;
      } catch {
        return Number.NaN;
      }
    },
  });
}
