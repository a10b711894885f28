import cluster from 'node:cluster';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { CommandFailed } from '../cli/errors.js';
import { exitOnFatalErrors } from '../common/fatal-errors.js';
import { createLogger } from '../common/logger.js';
import { startClusterProxy } from './cluster/primary.js';
import type { ProxyConfig } from './config.js';
import { isLoopbackHost, urlOf } from '../common/listen-address.js';
import { createControlPlane, type ControlPlane } from './admin/control-plane.js';
import { FileSlotStore } from './state/file-store.js';
import { ProxyMetrics } from './metrics.js';
import { tuneHeapForProxying } from './heap-tuning.js';
import { createEdgeProxy, type EdgeProxy } from './edge/edge-proxy.js';
import { RedisStore } from './state/redis-store.js';
import { StoreCorruptError, StoreUnavailableError, type SlotStore } from './state/store.js';
import { startEdgeTls, type EdgeTls } from './tls/edge-tls.js';

export interface RunningProxy {
  /** The public listener, e.g. http://127.0.0.1:8080 */
  publicUrl: string;
  /** The admin listener, e.g. http://127.0.0.1:9080 */
  adminUrl: string;
  /** The TLS listener (HTTP/2 and HTTP/1.1), e.g. https://127.0.0.1:443; undefined without TLS. */
  tlsUrl: string | undefined;
  edge: EdgeProxy;
  control: ControlPlane;
  store: SlotStore;
  /**
   * Stops the admin listener, lets requests in flight finish (up to
   * `timeoutMs`, default SHUTDOWN_TIMEOUT), then closes the store.
   */
  close(timeoutMs?: number): Promise<void>;
}

export interface StartProxyOptions {
  /** Defaults to a logger built from LOG_LEVEL and LOG_FORMAT. */
  logger?: Logger;
  /** Health poll of both slots for /admin/status (default 5 s). */
  healthPollIntervalMs?: number;
}

/** What a cluster worker runs (built next to this file). */
const WORKER_SCRIPT = fileURLToPath(new URL('./cluster/worker-main.js', import.meta.url));

/** Redis for a fleet (REDIS_URL), else the state file (docs/architecture.md, Slot state). */
export function storeFor(config: ProxyConfig, logger: Logger): SlotStore {
  if (config.REDIS_URL) {
    return new RedisStore({ url: config.REDIS_URL, keyPrefix: config.REDIS_KEY_PREFIX, logger });
  }
  return new FileSlotStore({ stateFile: config.STATE_FILE, logger });
}

function warnIfAdminOffLoopback(config: ProxyConfig, logger: Logger): void {
  if (!isLoopbackHost(config.ADMIN_HOST)) {
    logger.warn(
      { admin_host: config.ADMIN_HOST },
      'the admin API listens off loopback (ADMIN_ALLOW_REMOTE): anyone who can reach it and guesses the key can move traffic; keep it on a private network',
    );
  }
}

/**
 * `togather proxy` in this one process, without the process around it
 * (PROXY_WORKERS is runProxyProcess's business): loads the slot state,
 * starts the public and admin listeners and returns once both listen.
 * Throws StoreCorruptError / StoreUnavailableError when the state cannot be
 * loaded, and the listen error when a port is taken; nothing is left running.
 */
export async function startProxy(
  config: ProxyConfig,
  options: StartProxyOptions = {},
): Promise<RunningProxy> {
  const logger =
    options.logger ??
    createLogger({ level: config.LOG_LEVEL, format: config.LOG_FORMAT, name: 'togather-proxy' });
  warnIfAdminOffLoopback(config, logger);
  const store = storeFor(config, logger);
  const metrics = new ProxyMetrics(new Registry());
  let edge: EdgeProxy | undefined;
  let control: ControlPlane | undefined;
  let tls: EdgeTls | undefined;
  try {
    tls = await startEdgeTls({ config, logger, registry: metrics.registry });
    edge = await createEdgeProxy({ config, store, logger, metrics, front: tls?.front });
    const data = edge;
    control = createControlPlane({
      config,
      store,
      registry: data.registry,
      traffic: () => ({ slots: { blue: data.traffic('blue'), green: data.traffic('green') } }),
      metrics,
      switches: metrics.switches,
      logger,
      healthPollIntervalMs: options.healthPollIntervalMs,
      tls: tls?.status,
    });
    const publicUrl = urlOf(await data.listen());
    const tlsAddress = await tls?.listen(data);
    const tlsUrl = tlsAddress && urlOf(tlsAddress, 'https');
    const adminUrl = await control.listen();
    logger.info(
      {
        public: publicUrl,
        tls: tlsUrl ?? null,
        admin: adminUrl,
        store: `${store.kind} ${store.location}`,
        active: data.registry.current.active,
        epoch: data.registry.current.epoch,
      },
      'togather proxy listening',
    );
    const running = { publicUrl, tlsUrl, adminUrl, edge: data, control, store, tls };
    let closing: Promise<void> | undefined;
    return {
      ...running,
      close(timeoutMs?: number) {
        closing ??= stop(running, logger, timeoutMs);
        return closing;
      },
    };
  } catch (error) {
    await control?.close().catch(() => undefined);
    await edge?.close(0).catch(() => undefined);
    await tls?.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw error;
  }
}

async function stop(
  running: { edge: EdgeProxy; control: ControlPlane; store: SlotStore; tls?: EdgeTls | undefined },
  logger: Logger,
  timeoutMs: number | undefined,
): Promise<void> {
  // No switch may start once shutdown has begun; the public side drains.
  await Promise.all([
    running.control.close().catch((error: unknown) => {
      logger.warn({ err: error }, 'admin listener did not close cleanly');
    }),
    running.edge.close(timeoutMs),
  ]);
  await running.tls?.close();
  await running.store.close();
  logger.info('togather proxy stopped');
}

/**
 * The `togather proxy` process: starts, serves until SIGTERM or SIGINT, then
 * stops gracefully and returns (exit 0). A second signal during the stop
 * exits at once with 1. With PROXY_WORKERS > 1 this process is the cluster
 * primary (store, admin API) and N worker processes serve the public port.
 */
export async function runProxyProcess(config: ProxyConfig): Promise<void> {
  tuneHeapForProxying();
  const logger = createLogger({
    level: config.LOG_LEVEL,
    format: config.LOG_FORMAT,
    name: 'togather-proxy',
  });
  exitOnFatalErrors(logger);
  let running: { close(timeoutMs?: number): Promise<void> };
  try {
    if (config.PROXY_WORKERS > 1) {
      warnIfAdminOffLoopback(config, logger);
      running = await startClusterProxy({
        config,
        store: storeFor(config, logger),
        logger,
        cluster,
        workerScript: WORKER_SCRIPT,
      });
    } else {
      running = await startProxy(config, { logger });
    }
  } catch (error) {
    throw new CommandFailed(`cannot start the proxy: ${startFailure(error)}`);
  }
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  logger.info(
    { signal, timeout_ms: config.SHUTDOWN_TIMEOUT },
    'stopping: finishing requests in flight',
  );
  const again = (second: NodeJS.Signals) => {
    logger.warn({ signal: second }, 'second signal: exiting without waiting');
    process.exit(1);
  };
  process.once('SIGTERM', again);
  process.once('SIGINT', again);
  await running.close();
  process.off('SIGTERM', again);
  process.off('SIGINT', again);
}

function startFailure(error: unknown): string {
  if (error instanceof StoreCorruptError)
    return `the stored slot state is unreadable: ${error.message}`;
  if (error instanceof StoreUnavailableError)
    return `the slot store is unavailable: ${error.message}`;
  const code = (error as NodeJS.ErrnoException).code;
  const message = error instanceof Error ? error.message : String(error);
  if (code === 'EADDRINUSE') return `a port is already in use (${message})`;
  if (code === 'EACCES')
    return `not allowed to listen (${message}); ports below 1024 need privileges`;
  if (code === 'EADDRNOTAVAIL') return `cannot listen on that address (${message})`;
  return message;
}
