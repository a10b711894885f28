import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/** Which way a stalled relay holds bytes back. */
export type StallDirection = 'both' | 'replies';

interface Link {
  client: Socket;
  server: Socket;
}

/**
 * A TCP relay between a client (the proxy) and a server (Redis) that a test
 * can break the way networks break: `stall()` stops forwarding while every
 * connection stays open (a partition: commands vanish, or only their replies
 * do), `cut()` resets every connection and refuses new ones (the server
 * unreachable), `restore()` heals either. Bytes held during a stall are
 * dropped, not delivered late.
 */
export class TcpRelay {
  private readonly links = new Set<Link>();
  private stalled: StallDirection | null = null;
  private refusing = false;

  private constructor(
    private readonly server: Server,
    readonly targetPort: number,
    readonly targetHost: string,
  ) {}

  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpRelay> {
    const server = createServer();
    const relay = new TcpRelay(server, targetPort, targetHost);
    server.on('connection', (client) => relay.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return relay;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Open client connections through the relay. */
  get connections(): number {
    return this.links.size;
  }

  /** Stops forwarding (`replies`: only the server's answers) while keeping connections open. */
  stall(direction: StallDirection = 'both'): void {
    this.stalled = direction;
  }

  /** Resets every connection and refuses new ones until restore(). */
  cut(): void {
    this.refusing = true;
    for (const link of this.links) {
      link.client.resetAndDestroy();
      link.server.destroy();
    }
    this.links.clear();
  }

  /** Forwards again and accepts connections again. */
  restore(): void {
    this.stalled = null;
    this.refusing = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    client.on('error', () => undefined);
    if (this.refusing) {
      client.resetAndDestroy();
      return;
    }
    const server = connect(this.targetPort, this.targetHost);
    server.on('error', () => undefined);
    const link: Link = { client, server };
    this.links.add(link);
    const end = () => {
      if (!this.links.delete(link)) return;
      client.destroy();
      server.destroy();
    };
    client.on('close', end);
    server.on('close', end);
    client.on('data', (chunk: Buffer) => {
      if (this.stalled !== 'both') server.write(chunk);
    });
    server.on('data', (chunk: Buffer) => {
      if (this.stalled === null) client.write(chunk);
    });
  }
}
