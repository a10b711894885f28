import {
  createServer,
  request,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

/** An answer the stand-in gives instead of the proxy. */
export interface FaultAnswer {
  status: number;
  body: Record<string, unknown>;
  headers?: Record<string, string>;
}

/** A switch or rollback call as it reached the stand-in. */
export interface SwitchCall {
  at: number;
  path: string;
  body: string;
  /** The status the deploy got back (injected or the proxy's). */
  status: number;
}

/**
 * A real HTTP server in front of a real proxy's admin API: every request is
 * relayed to the proxy, except that the next switch calls (POST
 * /admin/switch, /admin/rollback) get the answers queued with `refuse()`
 * first. It only injects statuses the proxy itself gives (429 with
 * Retry-After, 503, 400, 401, 409) at moments a test cannot otherwise pick.
 */
export class AdminFaults {
  readonly calls: SwitchCall[] = [];
  private readonly queue: FaultAnswer[] = [];

  private constructor(
    private readonly server: Server,
    private readonly target: URL,
  ) {}

  static async start(targetUrl: string): Promise<AdminFaults> {
    const server = createServer();
    const faults = new AdminFaults(server, new URL(targetUrl));
    server.on('request', (req, res) => {
      void faults.handle(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return faults;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** The next `count` switch calls get this answer. */
  refuse(answer: FaultAnswer, count = 1): void {
    for (let i = 0; i < count; i++) this.queue.push(answer);
  }

  /** Forgets queued answers and recorded calls. */
  reset(): void {
    this.queue.length = 0;
    this.calls.length = 0;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const path = (req.url ?? '/').split('?')[0]!;
    const isSwitch =
      req.method === 'POST' && (path === '/admin/switch' || path === '/admin/rollback');
    const call: SwitchCall | undefined = isSwitch
      ? { at: Date.now(), path: req.url ?? path, body: body.toString('utf8'), status: 0 }
      : undefined;
    if (call) this.calls.push(call);
    const fault = isSwitch ? this.queue.shift() : undefined;
    if (fault && call) {
      call.status = fault.status;
      res.writeHead(fault.status, { 'content-type': 'application/json', ...fault.headers });
      res.end(JSON.stringify(fault.body));
      return;
    }
    const upstream = request(
      {
        host: this.target.hostname,
        port: this.target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: this.target.host },
      },
      (answer) => {
        if (call) call.status = answer.statusCode ?? 0;
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', (error) => {
      res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'relay', message: error.message }));
    });
    upstream.end(body);
  }
}
