import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { createLogger } from '../../common/logger.js';
import { answerChallenge, type ChallengeResponder } from '../../proxy/tls/challenge-responder.js';
import { createTlsListener, type TlsListener } from '../../proxy/tls/tls-listener.js';
import { loadTlsConfig } from '../../proxy/tls/tls-config.js';
import { startTlsLayer, type TlsLayer, type TlsLayerOptions } from '../../proxy/tls/tls-layer.js';
import { LogCapture } from './edge.js';
import { freePort } from '../../harness/ports.js';
import { TestPebble } from './pebble.js';
import { valueOf } from './wait.js';

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
export function eventually<T>(
  check: () => T | undefined | Promise<T | undefined>,
  what: string,
  timeoutMs = 30_000,
): Promise<T> {
  return valueOf(check, { what, timeout: timeoutMs, interval: 50 });
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

/** The ACME test domain; pebble's DNS answers 127.0.0.1 for it. */
export const ACME_TEST_DOMAIN = 'events.togather.test';

export interface PebbleSuite {
  readonly challenge: ChallengeListener;
  readonly pebble: TestPebble;
  /** The root that verifies what pebble issued. */
  readonly root: string;
  /**
   * A certificate layer and TLS listener ordering ACME_TEST_DOMAIN from this
   * pebble, with fast retries; stopped after each test. `answersChallenges:
   * false` leaves it out of the CA's reach (a proxy behind another).
   */
  edge(
    env?: Record<string, string>,
    options?: {
      redis?: TlsLayerOptions['redis'];
      lockWaitMs?: number;
      answersChallenges?: boolean;
    },
  ): Promise<AcmeEdge>;
}

/**
 * Registers the hooks of a suite against one pebble (and its challenge
 * listener) and returns what the tests use; call it inside describe().
 */
export function pebbleSuite(pebbleOptions: { validitySeconds?: number } = {}): PebbleSuite {
  const edges: AcmeEdge[] = [];
  let challenge: ChallengeListener | undefined;
  let pebble: TestPebble | undefined;
  let root = '';

  beforeAll(async () => {
    challenge = await ChallengeListener.start();
    pebble = await TestPebble.start({ httpPort: challenge.port, ...pebbleOptions });
    root = await pebble.rootPem();
  });
  afterAll(async () => {
    await pebble?.stop();
    await challenge?.close();
  });
  afterEach(async () => {
    for (const edge of edges.splice(0)) await edge.stop();
    challenge?.responders.splice(0);
    challenge?.forwarded.splice(0);
    if (challenge) challenge.broken = false;
  });

  return {
    get challenge() {
      return challenge!;
    },
    get pebble() {
      return pebble!;
    },
    get root() {
      return root;
    },
    async edge(env = {}, options = {}) {
      const started = await startAcmeEdge(
        {
          ACME_DOMAINS: ACME_TEST_DOMAIN,
          ACME_DIRECTORY_URL: pebble!.directoryUrl,
          ACME_CA_FILE: pebble!.caFile,
          ...env,
        },
        {
          redis: options.redis,
          tuning: {
            manager: {
              retry: { firstMs: 400, maxMs: 1600 },
              lockWaitMs: options.lockWaitMs ?? 500,
            },
            issuer: { statusPoll: { minMs: 100, maxMs: 500, attempts: 20 } },
          },
        },
      );
      edges.push(started);
      if (options.answersChallenges ?? true) challenge!.responders.push(started.layer.challenges!);
      return started;
    },
  };
}
