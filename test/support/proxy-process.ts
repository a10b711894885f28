import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForPort } from '../../harness/ports.js';
import { startCli } from './processes.js';
import { WatchedProcess } from '../../harness/child-process.js';
import { until } from './wait.js';

export const PROCESS_ADMIN_KEY = 'reliability-admin-key-0123456789abcdefghij';

export interface ProxyProcessOptions {
  blueUrl: string;
  greenUrl: string;
  /** Redis store when set, else a file store in `stateDir`. */
  redisUrl?: string;
  keyPrefix?: string;
  /** Proxy variables on top of the defaults below (UPSTREAM_TIMEOUT, HEADERS_TIMEOUT...). */
  env?: Record<string, string>;
  /** Reuse a state directory (a restart with the file store); not removed by stop(). */
  stateDir?: string;
  /** Reuse ports (a restart). */
  port?: number;
  adminPort?: number;
}

export interface AdminAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: unknown;
}

/**
 * `togather proxy` as a child process of the built CLI, on free loopback
 * ports, logging JSON at debug level to stdout, with a short drain and
 * shutdown unless the options say otherwise.
 */
export class ProxyProcess {
  private constructor(
    readonly options: ProxyProcessOptions,
    readonly process: WatchedProcess,
    readonly port: number,
    readonly adminPort: number,
    readonly stateDir: string,
    private ownStateDir: boolean,
  ) {}

  static async start(options: ProxyProcessOptions): Promise<ProxyProcess> {
    const port = options.port ?? (await freePort());
    const adminPort = options.adminPort ?? (await freePort());
    const ownStateDir = options.stateDir === undefined;
    const stateDir = options.stateDir ?? (await mkdtemp(join(tmpdir(), 'togather-rel-')));
    const env: Record<string, string> = {
      PROXY_HOST: '127.0.0.1',
      PROXY_PORT: String(port),
      ADMIN_HOST: '127.0.0.1',
      ADMIN_PORT: String(adminPort),
      ADMIN_API_KEY: PROCESS_ADMIN_KEY,
      BLUE_URL: options.blueUrl,
      GREEN_URL: options.greenUrl,
      STATE_FILE: join(stateDir, 'proxy-state.json'),
      DRAIN_TIMEOUT: '2s',
      SHUTDOWN_TIMEOUT: '2s',
      LOG_LEVEL: 'debug',
      ...(options.redisUrl
        ? { REDIS_URL: options.redisUrl, REDIS_KEY_PREFIX: options.keyPrefix ?? 'rel:' }
        : {}),
      ...options.env,
    };
    const child = startCli(['proxy'], env);
    const proxy = new ProxyProcess(options, child, port, adminPort, stateDir, ownStateDir);
    try {
      await proxy.waitReady();
    } catch (error) {
      await child.stop('SIGKILL');
      throw new Error(
        `togather proxy did not start: ${String(error)}\n${child.stdout}\n${child.stderr}`,
      );
    }
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
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
  admin(
    method: string,
    path: string,
    options: { body?: string; headers?: Record<string, string>; timeoutMs?: number } = {},
  ): Promise<AdminAnswer> {
    const headers: Record<string, string> = {
      authorization: `Bearer ${PROCESS_ADMIN_KEY}`,
      ...options.headers,
    };
    if (options.body !== undefined) {
      headers['content-length'] = String(Buffer.byteLength(options.body));
    }
    return new Promise((resolve, reject) => {
      const req = request(
        `${this.adminUrl}${path}`,
        { method, headers, agent: false, timeout: options.timeoutMs ?? 15_000 },
        (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
          res.on('error', reject);
          res.on('end', () => {
            let json: unknown;
            try {
              json = JSON.parse(text);
            } catch {
              json = undefined;
            }
            resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
      req.on('error', reject);
      req.end(options.body);
    });
  }

  switchTo(slot: string, query = ''): Promise<AdminAnswer> {
    return this.admin('POST', `/admin/switch?slot=${slot}${query}`, {
      headers: { 'x-actor': 'reliability-test' },
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
    await this.process.stop('SIGTERM', 10_000);
    if (this.ownStateDir) await rm(this.stateDir, { recursive: true, force: true });
  }

  private async waitReady(timeoutMs = 20_000): Promise<void> {
    // An exit ends the wait at once (no point polling a dead process).
    await until(async () => !this.alive || (await this.healthy()), {
      timeout: timeoutMs,
      interval: 50,
      what: '/healthz to answer 200',
    });
    if (!this.alive) throw new Error('the process exited');
    await waitForPort(this.port);
  }

  private async healthy(): Promise<boolean> {
    try {
      return (await this.admin('GET', '/healthz', { timeoutMs: 1000 })).status === 200;
    } catch {
      return false; // not listening yet
    }
  }
}
