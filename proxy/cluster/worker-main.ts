/**
 * The entry point of a `togather proxy` cluster worker (PROXY_WORKERS > 1):
 * the primary forks this file with its own environment, so the worker reads
 * the same configuration the primary has already validated.
 */
import cluster from 'node:cluster';
import { exitOnFatalErrors } from '../../common/fatal-errors.js';
import { createLogger } from '../../common/logger.js';
import { runClusterWorker, type PrimaryChannel } from './worker.js';
import type { WorkerMessage } from './protocol.js';
import { loadProxyConfig } from '../config.js';
import { tuneHeapForProxying } from '../heap-tuning.js';

const channel: PrimaryChannel = {
  get connected() {
    return process.connected;
  },
  send(message: WorkerMessage) {
    process.send?.(message);
  },
  onMessage(listener) {
    process.on('message', listener);
  },
  onDisconnect(listener) {
    process.on('disconnect', listener);
  },
};

async function main(): Promise<number> {
  if (!cluster.isWorker) {
    process.stderr.write(
      'togather: proxy/cluster/worker-main.js is started by `togather proxy` only\n',
    );
    return 2;
  }
  tuneHeapForProxying();
  const config = loadProxyConfig();
  const logger = createLogger({
    level: config.LOG_LEVEL,
    format: config.LOG_FORMAT,
    name: 'togather-proxy',
    base: { worker: cluster.worker?.id },
  });
  exitOnFatalErrors(logger);
  return runClusterWorker({ config, logger, channel });
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `togather proxy worker: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    process.exit(1);
  },
);
