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
 * connection stays open (a partition that heals before TCP gives up: what
 * was sent is held and delivered late, in order, on `restore()`; `replies`
 * holds only the server's answers, so commands still run), `cut()` resets
 * every connection and refuses new ones (the server unreachable).
 */
export class TcpRelay {
  private readonly links = new Set<Link>();
  private stalled: StallDirection | null = null;
  private refusing = false;
  private trigger: { marker: string; direction: StallDirection } | null = null;

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
    for (const link of this.links) this.hold(link);
  }

  /**
   * Stalls (as stall() does) as soon as a client chunk containing `marker`
   * passes: with `replies`, that chunk reaches the server and its answer is
   * held; with `both`, that chunk is held too.
   */
  stallWhenSent(marker: string, direction: StallDirection): void {
    this.trigger = { marker, direction };
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
    this.trigger = null;
    for (const link of this.links) {
      link.client.resume();
      link.server.resume();
    }
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
    // Plain forwarding (no pipe(): its backpressure handling could resume a held socket).
    client.on('data', (chunk: Buffer) => {
      const trigger = this.trigger;
      if (trigger !== null && chunk.includes(trigger.marker)) {
        this.trigger = null;
        this.stall(trigger.direction);
        if (trigger.direction === 'both') {
          // Already read: put it back to be delivered first when the stall ends.
          client.unshift(chunk);
          return;
        }
      }
      server.write(chunk);
    });
    server.on('data', (chunk: Buffer) => client.write(chunk));
    this.hold(link);
  }

  /** Stops reading what is to be held back: it waits in the socket buffers. */
  private hold(link: Link): void {
    if (this.stalled === 'both') link.client.pause();
    if (this.stalled !== null) link.server.pause();
  }
}
