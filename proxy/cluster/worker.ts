import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import {
  asPrimaryMessage,
  type PrimaryMessage,
  type WorkerMessage,
  type WorkerTraffic,
} from './protocol.js';
import type { ProxyConfig } from '../config.js';
import { ProxyMetrics } from '../metrics.js';
import { createEdgeProxy, type EdgeProxy } from '../edge/edge-proxy.js';
import { RelayedSlotState } from './relayed-state.js';
import { loadRegistry, type SlotRegistry } from '../state/slot-registry.js';
import type { Slot } from '../../common/slot.js';
import { AcmeRelay } from '../tls/acme-relay.js';
import { startWorkerTls, type EdgeTls } from '../tls/edge-tls.js';

/** The IPC channel to the primary: `process` in a cluster worker. */
export interface PrimaryChannel {
  readonly connected: boolean;
  send(message: WorkerMessage): void;
  onMessage(listener: (message: unknown) => void): void;
  /** The primary went away. */
  onDisconnect(listener: () => void): void;
}

export interface ClusterWorkerOptions {
  config: ProxyConfig;
  logger: Logger;
  channel: PrimaryChannel;
}

/**
 * One worker of a `PROXY_WORKERS > 1` proxy: a data plane on the shared
 * public port, fed with the slot state the primary relays. It answers the
 * primary's questions (traffic, metrics), and stops (draining what runs) when
 * told to, on SIGTERM/SIGINT, or when the primary goes away. Resolves with
 * the exit code once stopped.
 */
export async function runClusterWorker(options: ClusterWorkerOptions): Promise<number> {
  const { config, logger, channel } = options;
  const source = new RelayedSlotState({ logger });
  const metrics = new ProxyMetrics(new Registry());
  let registry: SlotRegistry | null = null;
  let edge: EdgeProxy | null = null;
  let tls: EdgeTls | undefined;
  // The primary orders ACME certificates; this worker serves what it relays.
  const relay = config.ACME_DOMAINS.length > 0 ? new AcmeRelay(logger) : undefined;
  let stopping: Promise<number> | null = null;
  let resolveExit!: (code: number) => void;
  const exited = new Promise<number>((resolve) => (resolveExit = resolve));

  const send = (message: WorkerMessage): void => {
    if (channel.connected) channel.send(message);
  };

  const stop = (timeoutMs: number, why: string): Promise<number> => {
    stopping ??= (async () => {
      logger.info({ reason: why, timeout_ms: timeoutMs }, 'proxy worker stopping');
      if (edge !== null) await edge.close(timeoutMs);
      await tls?.close();
      return 0;
    })();
    void stopping.then(resolveExit);
    return stopping;
  };

  channel.onMessage((raw) => {
    const message = asPrimaryMessage(raw);
    if (message !== null) void onMessage(message);
  });
  // The primary is gone (it crashed or was killed): nobody relays switches any more.
  channel.onDisconnect(() => void stop(config.SHUTDOWN_TIMEOUT, 'primary gone'));
  process.once('SIGTERM', () => void stop(config.SHUTDOWN_TIMEOUT, 'SIGTERM'));
  process.once('SIGINT', () => void stop(config.SHUTDOWN_TIMEOUT, 'SIGINT'));

  async function onMessage(message: PrimaryMessage): Promise<void> {
    switch (message.type) {
      case 'togather:init':
        if (message.tls !== undefined) relay?.apply(message.tls);
        source.start(message.state, message.storeKind);
        return;
      case 'togather:tls':
        relay?.apply(message.tls);
        return;
      case 'togather:state':
        source.relay(message.state);
        send({ type: 'togather:applied', epoch: registry?.current.epoch ?? source.epoch });
        return;
      case 'togather:ask':
        if (message.question === 'traffic') {
          send({ type: 'togather:answer', id: message.id, traffic: traffic() });
        } else {
          send({
            type: 'togather:answer',
            id: message.id,
            metrics: await metrics.registry.getMetricsAsJSON(),
          });
        }
        return;
      case 'togather:stop':
        await stop(message.timeoutMs, 'stop from the primary');
        return;
    }
  }

  function traffic(): WorkerTraffic | undefined {
    const current = edge;
    if (current === null) return undefined;
    const view = (slot: Slot) => {
      const { inflight, websockets, draining } = current.traffic(slot);
      return { inflight, websockets, draining };
    };
    const state = current.registry.current;
    return {
      pid: process.pid,
      epoch: state.epoch,
      active: state.active,
      slots: { blue: view('blue'), green: view('green') },
    };
  }

  async function start(): Promise<void> {
    // Connections are spread over the workers: each holds its share of the limit.
    const share = Math.ceil(config.MAX_CONNECTIONS / config.PROXY_WORKERS);
    const shared = { ...config, MAX_CONNECTIONS: share };
    tls = await startWorkerTls({ config: shared, logger, relay });
    registry = await loadRegistry(source, config.DEFAULT_SLOT, logger);
    const created = createEdgeProxy({
      config: shared,
      registry,
      storeKind: source.kind,
      logger,
      metrics,
      front: tls?.front,
    });
    edge = created;
    // Told to stop while starting: never listen.
    if (stopping !== null) return;
    const address = await created.listen();
    const tlsAddress = await tls?.listen(created);
    send({
      type: 'togather:listening',
      address: address.address,
      port: address.port,
      ...(tlsAddress === undefined ? {} : { tlsPort: tlsAddress.port }),
    });
  }

  send({ type: 'togather:hello' });
  start().catch((error: unknown) => {
    const failure = error as NodeJS.ErrnoException;
    logger.error({ err: failure }, 'proxy worker could not start');
    send({
      type: 'togather:failed',
      message: failure.message ?? String(error),
      ...(typeof failure.code === 'string' ? { code: failure.code } : {}),
    });
    resolveExit(1);
  });
  return exited;
}
