import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type FakeSlotName = 'blue' | 'green';

export interface FakeHealth {
  /** Status of GET /health; 200 unless set. */
  status: number;
  /** Holds the health answer this long (a slot too slow for the gate). */
  delayMs: number;
  version: string;
}

/**
 * A tiny stand-in for one app slot on a real loopback socket: /health answers
 * as set (status, delay, version), every other path answers 200 JSON naming
 * the slot, so a test can tell which slot served a request (`/slow?ms=N`
 * after N ms).
 */
export class FakeSlot {
  readonly health: FakeHealth = { status: 200, delayMs: 0, version: '1.0.0' };
  healthRequests = 0;
  requests = 0;

  private constructor(
    readonly slot: FakeSlotName,
    private readonly server: Server,
  ) {}

  static async start(slot: FakeSlotName, port = 0): Promise<FakeSlot> {
    const server = createServer((req, res) => self.handle(req, res));
    server.keepAliveTimeout = 120_000;
    const self: FakeSlot = new FakeSlot(slot, server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    return self;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  setHealth(change: Partial<FakeHealth>): void {
    Object.assign(this.health, change);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    if (req.url === '/health') {
      this.healthRequests++;
      const { status, delayMs, version } = this.health;
      const answer = () => {
        if (res.destroyed) return;
        const state = status === 200 ? 'healthy' : 'unhealthy';
        sendJson(res, status, { status: state, slot: this.slot, version });
      };
      if (delayMs > 0) setTimeout(answer, delayMs);
      else answer();
      return;
    }
    this.requests++;
    // /slow?ms=N answers after N ms: a request still in flight at a switch.
    const slow = /^\/slow\?ms=(\d+)$/.exec(req.url ?? '');
    const delayMs = slow ? Number(slow[1]) : 0;
    req.on('end', () => {
      const answer = () => {
        if (!res.destroyed) sendJson(res, 200, { slot: this.slot, path: req.url });
      };
      if (delayMs > 0) setTimeout(answer, delayMs);
      else answer();
    });
  }
}

function sendJson(res: ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** Both slots, started together. */
export async function startFakeSlots(): Promise<Record<FakeSlotName, FakeSlot>> {
  const [blue, green] = await Promise.all([FakeSlot.start('blue'), FakeSlot.start('green')]);
  return { blue, green };
}
