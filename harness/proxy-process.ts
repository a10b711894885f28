/**
 * `togather proxy` as a child process of the built CLI, driven only through
 * its outside contract (docs/architecture.md): configured by environment, on
 * free loopback ports, switched and read through the admin API. The tests
 * take the defaults (debug logs on stdout, a short drain and shutdown); the
 * benchmarks pass their own variables and launcher.
 */
import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Agent, IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { BUILT_CLI } from './built-files.js';
import { launch, type Launch, type WatchedProcess } from './child-process.js';
import { httpRequest, keepAliveAgent, pollUntil } from './http-client.js';
import { freePort, waitForPort } from './ports.js';

/** The admin key unless the options give one (the tests send it themselves). */
export const PROCESS_ADMIN_KEY = 'reliability-admin-key-0123456789abcdefghij';

export interface ProxyProcessOptions {
  blueUrl: string;
  greenUrl: string;
  /** Redis store when set, else a file store in `stateDir`. */
  redisUrl?: string;
  keyPrefix?: string;
  /** Proxy variables on top of the defaults (UPSTREAM_TIMEOUT, HEADERS_TIMEOUT...), set last. */
  env?: Record<string, string>;
  /** Reuse a state directory (a restart with the file store); not removed by stop(). */
  stateDir?: string;
  /** Reuse ports (a restart). */
  port?: number;
  adminPort?: number;
  adminKey?: string;
  /** A TLS listener too (PROXY_TLS_PORT, a free port) serving this certificate; plain HTTP is not redirected. */
  tls?: { certFile: string; keyFile: string };
  /** For messages and the launcher; `proxy` by default. */
  name?: string;
  /** The built CLI to run (another build's, for A/B runs); this build's by default. */
  cli?: string;
  /** Node flags before the script (`--cpu-prof`, `--max-semi-space-size=16`). */
  nodeArgs?: string[];
  launch?: Launch;
  /** Admin calls over kept-alive connections (a switch timed without its connect); fresh ones by default. */
  keepAlive?: boolean;
  /** X-Actor of the switches; `reliability-test` by default. */
  actor?: string;
  /** How long stop() waits after SIGTERM before SIGKILL; 10 s by default. */
  stopGraceMs?: number;
}

export interface AdminAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: unknown;
  /** performance.now() when the request was sent and when the answer's headers arrived. */
  sentAt: number;
  answeredAt: number;
}

export class ProxyProcess {
  private constructor(
    readonly options: ProxyProcessOptions,
    readonly process: WatchedProcess,
    readonly port: number,
    readonly adminPort: number,
    /** The TLS listener's port when started with `tls`. */
    readonly tlsPort: number | undefined,
    readonly stateDir: string,
    private ownStateDir: boolean,
    private readonly agent: Agent | undefined,
  ) {}

  static async start(options: ProxyProcessOptions): Promise<ProxyProcess> {
    const port = options.port ?? (await freePort());
    const adminPort = options.adminPort ?? (await freePort());
    const tlsPort = options.tls ? await freePort() : undefined;
    const ownStateDir = options.stateDir === undefined;
    const stateDir = options.stateDir ?? (await mkdtemp(join(tmpdir(), 'togather-rel-')));
    const env: Record<string, string> = {
      PROXY_HOST: '127.0.0.1',
      PROXY_PORT: String(port),
      ADMIN_HOST: '127.0.0.1',
      ADMIN_PORT: String(adminPort),
      ADMIN_API_KEY: options.adminKey ?? PROCESS_ADMIN_KEY,
      BLUE_URL: options.blueUrl,
      GREEN_URL: options.greenUrl,
      STATE_FILE: join(stateDir, 'proxy-state.json'),
      DRAIN_TIMEOUT: '2s',
      SHUTDOWN_TIMEOUT: '2s',
      LOG_LEVEL: 'debug',
      ...(options.redisUrl
        ? { REDIS_URL: options.redisUrl, REDIS_KEY_PREFIX: options.keyPrefix ?? 'rel:' }
        : {}),
      ...(options.tls
        ? {
            PROXY_TLS_PORT: String(tlsPort),
            TLS_CERT_FILE: options.tls.certFile,
            TLS_KEY_FILE: options.tls.keyFile,
            HTTPS_REDIRECT: 'off',
          }
        : {}),
      ...options.env,
    };
    const name = options.name ?? 'proxy';
    const child = (options.launch ?? launch)(
      name,
      process.execPath,
      [...(options.nodeArgs ?? []), options.cli ?? BUILT_CLI, 'proxy'],
      env,
    );
    const agent = options.keepAlive ? keepAliveAgent() : undefined;
    const proxy = new ProxyProcess(
      options,
      child,
      port,
      adminPort,
      tlsPort,
      stateDir,
      ownStateDir,
      agent,
    );
    try {
      await proxy.waitReady();
    } catch (error) {
      await child.stop('SIGKILL');
      agent?.destroy();
      throw new Error(`togather ${name} did not start: ${String(error)}\n${child.output()}`);
    }
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** https://127.0.0.1:<port> when started with `tls`. */
  get tlsUrl(): string | undefined {
    return this.tlsPort === undefined ? undefined : `https://127.0.0.1:${this.tlsPort}`;
  }

  get adminUrl(): string {
    return `http://127.0.0.1:${this.adminPort}`;
  }

  get pid(): number {
    return this.process.pid;
  }

  get alive(): boolean {
    return this.process.child.exitCode === null && this.process.child.signalCode === null;
  }

  /** Everything the process printed (stdout and stderr). */
  get output(): string {
    return `${this.process.stdout}${this.process.stderr}`;
  }

  /** The JSON log lines on stdout, parsed (other lines skipped). */
  logLines(): Array<Record<string, unknown>> {
    const lines: Array<Record<string, unknown>> = [];
    for (const line of this.process.stdout.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // a line cut by the read: not a whole record yet
      }
    }
    return lines;
  }

  /** Open file descriptors of the proxy process (/proc/<pid>/fd). */
  openFds(): number {
    return readdirSync(`/proc/${this.pid}/fd`).length;
  }

  /** One admin request with the key (unless `headers.authorization` says otherwise). */
  async admin(
    method: string,
    path: string,
    options: { body?: string; headers?: Record<string, string>; timeoutMs?: number } = {},
  ): Promise<AdminAnswer> {
    const sentAt = performance.now();
    const answer = await httpRequest(`${this.adminUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.options.adminKey ?? PROCESS_ADMIN_KEY}`,
        ...options.headers,
      },
      body: options.body,
      agent: this.agent ?? false,
      timeoutMs: options.timeoutMs ?? 15_000,
    });
    let json: unknown;
    try {
      json = JSON.parse(answer.body);
    } catch {
      json = undefined;
    }
    return {
      status: answer.status,
      headers: answer.headers,
      text: answer.body,
      json,
      sentAt,
      answeredAt: answer.headersAt,
    };
  }

  switchTo(slot: string, query = ''): Promise<AdminAnswer> {
    return this.admin('POST', `/admin/switch?slot=${slot}${query}`, {
      headers: { 'x-actor': this.options.actor ?? 'reliability-test' },
    });
  }

  async status(): Promise<Record<string, unknown>> {
    const answer = await this.admin('GET', '/admin/status');
    if (answer.status !== 200) throw new Error(`/admin/status: ${answer.status} ${answer.text}`);
    return answer.json as Record<string, unknown>;
  }

  /** The value of the first sample line of `name` (with exactly these labels, if given). */
  async metric(name: string, labels = ''): Promise<number | undefined> {
    const answer = await this.admin('GET', '/metrics');
    const prefix = labels === '' ? `${name} ` : `${name}{${labels}} `;
    const line = answer.text.split('\n').find((l) => l.startsWith(prefix));
    return line === undefined ? undefined : Number(line.slice(prefix.length));
  }

  /** Sends a signal and waits for the exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.process.stop(signal, 10_000);
  }

  /**
   * A new process with the same options, ports and state directory (which
   * the new process then owns); this one must have exited.
   */
  async restart(env: Record<string, string> = {}): Promise<ProxyProcess> {
    const next = await ProxyProcess.start({
      ...this.options,
      env: { ...this.options.env, ...env },
      stateDir: this.stateDir,
      port: this.port,
      adminPort: this.adminPort,
    });
    next.ownStateDir = this.ownStateDir;
    this.ownStateDir = false;
    return next;
  }

  /** Stops the process (SIGTERM) and removes the state directory it created. */
  async stop(): Promise<void> {
    this.agent?.destroy();
    await this.process.stop('SIGTERM', this.options.stopGraceMs ?? 10_000);
    if (this.ownStateDir) await rm(this.stateDir, { recursive: true, force: true });
  }

  private async waitReady(timeoutMs = 20_000): Promise<void> {
    // An exit ends the wait at once (no point polling a dead process).
    const ready = await pollUntil(`${this.adminUrl}/healthz`, (a) => a.status === 200, timeoutMs, {
      agent: this.agent,
      stop: () => !this.alive,
      requestTimeoutMs: 1000,
    });
    if (!this.alive) throw new Error('the process exited');
    if (!ready) throw new Error(`/healthz did not answer 200 in ${timeoutMs} ms`);
    await waitForPort(this.port);
    if (this.tlsPort !== undefined) await waitForPort(this.tlsPort);
  }
}
