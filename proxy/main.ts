import cluster from 'node:cluster';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { CommandFailed } from '../cli/errors.js';
import { exitOnFatalErrors } from '../common/fatal-errors.js';
import { createLogger } from '../common/logger.js';
import { startClusterProxy } from './cluster/primary.js';
import { composeProxy, type ComposedProxy } from './compose.js';
import type { ProxyConfig } from './config.js';
import type { DataPlane, DataPlaneParts } from './data-plane.js';
import { createEdgeProxy, type EdgeProxy } from './edge/edge-proxy.js';
import { tuneHeapForProxying } from './heap-tuning.js';
import { StoreCorruptError, StoreUnavailableError } from './state/store.js';
import { createEdgeTls } from './tls/edge-tls.js';

export interface RunningProxy extends Omit<ComposedProxy<EdgePlane>, 'plane'> {
  /** The data plane in this process. */
  edge: EdgeProxy;
}

export interface StartProxyOptions {
  /** Defaults to a logger built from LOG_LEVEL and LOG_FORMAT. */
  logger?: Logger;
  /** Health poll of both slots for /admin/status (default 5 s). */
  healthPollIntervalMs?: number;
}

/** What a cluster worker runs (built next to this file). */
const WORKER_SCRIPT = fileURLToPath(new URL('./cluster/worker-main.js', import.meta.url));

/** The single process's data plane: the edge here, with its TLS listener when TLS is on. */
interface EdgePlane extends DataPlane {
  readonly edge: EdgeProxy;
}

function edgePlane({ config, registry, store, metrics, tls, logger }: DataPlaneParts): EdgePlane {
  const edgeTls = tls && createEdgeTls(config, tls, logger);
  const edge = createEdgeProxy({
    config,
    registry,
    storeKind: store.kind,
    logger,
    metrics,
    front: edgeTls?.front,
  });
  return {
    edge,
    metrics,
    traffic: () => ({ slots: { blue: edge.traffic('blue'), green: edge.traffic('green') } }),
    async listen() {
      const { address, port } = await edge.listen();
      const tlsAddress = await edgeTls?.listen(edge);
      return { address, port, tlsPort: tlsAddress?.port };
    },
    close: (timeoutMs) => edge.close(timeoutMs),
  };
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
  const logger = options.logger ?? processLogger(config);
  const { plane, ...proxy } = await composeProxy(config, {
    logger,
    healthPollIntervalMs: options.healthPollIntervalMs,
    dataPlane: edgePlane,
  });
  return { ...proxy, edge: plane.edge };
}

function processLogger(config: ProxyConfig): Logger {
  return createLogger({
    level: config.LOG_LEVEL,
    format: config.LOG_FORMAT,
    name: 'togather-proxy',
  });
}

/**
 * The `togather proxy` process: starts, serves until SIGTERM or SIGINT, then
 * stops gracefully and returns (exit 0). A second signal during the stop
 * exits at once with 1. With PROXY_WORKERS > 1 this process is the cluster
 * primary (store, admin API) and N worker processes serve the public port.
 */
export async function runProxyProcess(config: ProxyConfig): Promise<void> {
  tuneHeapForProxying();
  const logger = processLogger(config);
  exitOnFatalErrors(logger);
  let running: { close(timeoutMs?: number): Promise<void> };
  try {
    running =
      config.PROXY_WORKERS > 1
        ? await startClusterProxy(config, { logger, cluster, workerScript: WORKER_SCRIPT })
        : await startProxy(config, { logger });
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
