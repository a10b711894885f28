import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { createLogger } from '../../common/logger.js';
import { answerChallenge, type ChallengeResponder } from '../../proxy/tls/challenge-responder.js';
import { createTlsListener, type TlsListener } from '../../proxy/tls/tls-listener.js';
import { loadTlsConfig } from '../../proxy/tls/tls-config.js';
import { startTlsLayer, type TlsLayer, type TlsLayerOptions } from '../../proxy/tls/tls-layer.js';
import { LogCapture } from '../helpers/edge.js';
import { freePort } from '../helpers/ports.js';

/**
 * The plain listener's part in HTTP-01, as the proxy will have it: asks the
 * responders, and answers 404 "from the slot" for anything else. `broken`
 * makes it answer 404 to everything (a CA that cannot validate).
 */
export class ChallengeListener {
  readonly responders: ChallengeResponder[] = [];
  broken = false;
  /** Paths that reached "the slot". */
  readonly forwarded: string[] = [];

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(): Promise<ChallengeListener> {
    const port = await freePort();
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    const listener = new ChallengeListener(server, (server.address() as AddressInfo).port);
    server.on('request', (req, res) => {
      if (!listener.broken) {
        for (const responder of listener.responders) {
          if (answerChallenge(responder, req.method, req.url, res)) return;
        }
      }
      listener.forwarded.push(req.url ?? '');
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('from the slot');
    });
    return listener;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

export interface AcmeEdge {
  layer: TlsLayer;
  listener: TlsListener;
  port: number;
  registry: Registry;
  logs: LogCapture;
  stop(): Promise<void>;
}

/** The certificate layer from these variables, and a TLS listener answering `hello <version>`. */
export async function startAcmeEdge(
  env: Record<string, string>,
  extra: Partial<Pick<TlsLayerOptions, 'redis' | 'tuning'>> = {},
): Promise<AcmeEdge> {
  const logs = new LogCapture();
  const logger = createLogger({ level: 'debug', destination: logs.stream });
  const registry = new Registry();
  const layer = await startTlsLayer({
    config: loadTlsConfig(env),
    logger,
    registry,
    ...extra,
  });
  if (!layer) throw new Error('no certificate source in the test configuration');
  const listener = createTlsListener({
    source: layer.source,
    host: '127.0.0.1',
    port: 0,
    logger,
    ocsp: layer.ocsp,
    onRequest: (req, res) => res.end(`hello ${req.httpVersion}`),
  });
  const address = await listener.listen();
  return {
    layer,
    listener,
    port: address.port,
    registry,
    logs,
    async stop() {
      await listener.close(1000);
      await layer.close();
    },
  };
}

/** Waits until `check` returns a value (not undefined), polling. */
export async function eventually<T>(
  check: () => T | undefined | Promise<T | undefined>,
  what: string,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A counter's value from the registry, by labels. */
export async function metricValue(
  registry: Registry,
  name: string,
  labels: Record<string, string>,
): Promise<number | undefined> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return undefined;
  const { values } = await metric.get();
  const found = values.find((v) =>
    Object.entries(labels).every(([key, value]) => v.labels[key] === value),
  );
  return found?.value;
}
