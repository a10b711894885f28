import { request as httpRequest, Agent, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { Lifecycle } from '../../server/lifecycle.js';
import { createShutdown } from '../../server/shutdown.js';
import { freePort } from '../../harness/ports.js';
import { startCli, waitForHttp } from '../support/processes.js';
import {
  TEST_AUTH,
  call,
  postgresBackend,
  startTestApp,
  type TestApp,
  type TestBackend,
} from '../support/server.js';
import { until } from '../support/wait.js';
import { WatchedProcess } from '../../harness/child-process.js';

let backend: TestBackend;

beforeAll(async () => {
  backend = await postgresBackend();
});

afterAll(async () => {
  await backend?.close();
});

/** A route only these tests add: answers after ?ms= milliseconds. */
function slowRoute(app: FastifyInstance): void {
  app.get<{ Querystring: { ms?: string } }>('/test/slow', async (request) => {
    await new Promise((resolve) => setTimeout(resolve, Number(request.query.ms ?? 1000)));
    return { done: true };
  });
}

/** GET on a fresh connection (no pooling), so a closed listener shows as an error. */
function getFresh(
  url: string,
): Promise<{ status: number; body: string; headers: IncomingMessage['headers'] }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('graceful shutdown in process', () => {
  let server: TestApp;
  let lifecycle: Lifecycle;
  let released = 0;

  const start = async () => {
    lifecycle = new Lifecycle();
    server = await startTestApp({ database: backend.db, lifecycle, extraRoutes: slowRoute });
    return createShutdown({
      app: server.app,
      lifecycle,
      logger: server.logs.logger,
      timeoutMs: 10_000,
      release: async () => {
        released++;
      },
    });
  };

  it('lets a slow request finish with 200 while /health and /readyz answer 503 shutting_down, then closes', async () => {
    const shutdown = await start();
    const slow = getFresh(`${server.url}/test/slow?ms=1500`);
    await until(() => lifecycle.inflight >= 1);

    const done = shutdown.shutdown('test');
    const health = await getFresh(`${server.url}/health`);
    expect(health.status).toBe(503);
    // The contract's fields stay; shutting_down is added, and a check says why it fails.
    expect(JSON.parse(health.body)).toMatchObject({
      status: 'unhealthy',
      shutting_down: true,
      checks: {
        http_endpoint: {
          status: 'fail',
          message:
            'shutting down: the listener closes once requests in flight finish (1 besides this one)',
        },
      },
    });
    expect(health.headers.connection).toBe('close');
    const ready = await getFresh(`${server.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body)).toEqual({ status: 'shutting_down' });
    const live = await getFresh(`${server.url}/healthz`);
    expect(live.status).toBe(200);

    const response = await slow;
    expect(response.status).toBe(200);
    expect(JSON.parse(response.body)).toEqual({ done: true });
    expect(await done).toBe(0);
    expect(released).toBe(1);
    await expect(getFresh(`${server.url}/healthz`)).rejects.toThrow(/ECONNREFUSED/);
    const lines = server.logs.lines.map((l) => l.msg);
    expect(lines).toContain('shutting down: draining requests in flight');
    expect(lines).toContain('shut down');
  });

  it('closes idle keep-alive connections at once instead of waiting for their timeout', async () => {
    const shutdown = await start();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    let socket: Socket | undefined;
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest(`${server.url}/healthz`, { agent }, (res) => {
        socket = res.socket;
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end();
    });
    await until(() => socket !== undefined);
    const closed = new Promise<void>((resolve) => socket!.once('close', () => resolve()));
    const started = Date.now();
    expect(await shutdown.shutdown('test')).toBe(0);
    await closed;
    expect(Date.now() - started).toBeLessThan(10_000);
    agent.destroy();
  });

  it('cuts requests still running at the deadline and reports it (exit code 1)', async () => {
    lifecycle = new Lifecycle();
    server = await startTestApp({ database: backend.db, lifecycle, extraRoutes: slowRoute });
    const shutdown = createShutdown({
      app: server.app,
      lifecycle,
      logger: server.logs.logger,
      timeoutMs: 300,
      release: async () => undefined,
    });
    const slow = getFresh(`${server.url}/test/slow?ms=20000`).then(
      () => 'answered',
      () => 'cut',
    );
    await until(() => lifecycle.inflight >= 1);
    expect(await shutdown.shutdown('test')).toBe(1);
    expect(await slow).toBe('cut');
    expect(server.logs.lines.map((l) => l.msg)).toContain(
      'grace period over: closing connections with requests still in flight',
    );
  });
});

describe('togather serve on SIGTERM', () => {
  let child: WatchedProcess | undefined;

  afterAll(async () => {
    await child?.stop('SIGKILL');
  });

  it('finishes a request in flight (a slow upload) with 201, answers /health 503 meanwhile, exits 0', async () => {
    const port = await freePort();
    const metricsPort = await freePort();
    child = startCli(['serve'], {
      ENVIRONMENT: 'test',
      SERVER_HOST: '127.0.0.1',
      SERVER_PORT: String(port),
      METRICS_PORT: String(metricsPort),
      DATABASE_URL: backend.url!,
      ADMIN_API_KEY: TEST_AUTH.adminApiKey,
      JWT_SECRET: TEST_AUTH.jwtSecret,
      ADMIN_PASSWORD: TEST_AUTH.adminPassword,
      GRACEFUL_SHUTDOWN_TIMEOUT_SECONDS: '20',
      SLOT: 'green',
    });
    await child.waitFor(/togather serve listening on http:\/\/127\.0\.0\.1:\d+/);
    const base = `http://127.0.0.1:${port}`;
    await waitForHttp(`${base}/health`);

    const body = JSON.stringify({ name: 'Uploaded slowly', startDate: '2035-01-01T00:00:00Z' });
    const half = Math.floor(body.length / 2);
    let upload!: ReturnType<typeof httpRequest>;
    const answered = new Promise<{ status: number; body: string }>((resolve, reject) => {
      upload = httpRequest(
        `${base}/api/v1/events`,
        {
          method: 'POST',
          agent: false,
          headers: {
            authorization: `Bearer ${TEST_AUTH.adminApiKey}`,
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
          },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (d: string) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      upload.on('error', reject);
    });
    upload.write(body.slice(0, half));
    // The request is in flight once the app counts it (scrapes of the metrics listener are not app requests).
    await until(async () => {
      const metrics = await call(`http://127.0.0.1:${metricsPort}/metrics`);
      return /^togather_http_inflight_requests [1-9]\d*$/m.test(metrics.text);
    });

    child.child.kill('SIGTERM');
    await until(async () => {
      const health = await getFresh(`${base}/health`).catch(() => undefined);
      return health?.status === 503 && JSON.parse(health.body).shutting_down === true;
    });
    expect(child.child.exitCode).toBeNull();

    upload.end(body.slice(half));
    const response = await answered;
    expect(response.status).toBe(201);
    expect(JSON.parse(response.body)).toMatchObject({ name: 'Uploaded slowly' });

    const exit = await child.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(child.stdout).toContain('shutting down: draining requests in flight');
    expect(child.stdout).toMatch(/"drained":true,"msg":"shut down"/);
    expect(child.stderr).toBe('');
  });
});
