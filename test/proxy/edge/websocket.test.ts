import { createHash, randomBytes } from 'node:crypto';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestEdge, twoSlotsAndEdge, type SlotsAndEdge } from '../../support/edge.js';
import { closedPort } from '../../../harness/ports.js';
import { FakeSlot } from '../../support/fake-slot.js';
import {
  closeOf,
  nextMessage,
  openWebSocket,
  refusedWebSocket,
} from '../../support/websocket-client.js';
import { until } from '../../support/wait.js';
import { rawHttp } from '../../support/raw-client.js';

describe('WebSocket proxying', () => {
  let t: SlotsAndEdge;

  beforeAll(async () => {
    t = await twoSlotsAndEdge();
  });

  afterAll(() => t?.close());

  it('echoes text and binary messages through the proxy and tags the handshake', async () => {
    const { ws, headers } = await openWebSocket(`ws://127.0.0.1:${t.port}/live?room=1`, {
      'x-request-id': 'ws-1',
    });
    expect(headers['x-togather-slot']).toBe('blue');
    expect(headers['x-request-id']).toBe('ws-1');
    const upstreamSide = t.blue.requests.length; // handshakes are not recorded as requests
    expect(upstreamSide).toBeGreaterThanOrEqual(0);

    const text = nextMessage(ws);
    ws.send('hello');
    expect(String(await text)).toBe('blue:hello');

    const big = randomBytes(1024 * 1024);
    const binary = nextMessage(ws);
    ws.send(big);
    const echoed = (await binary) as Buffer;
    expect(echoed.subarray(0, 5).toString()).toBe('blue:');
    expect(echoed.subarray(5).equals(big)).toBe(true);

    expect(t.edge.traffic('blue').websockets).toBe(1);
    const closed = closeOf(ws);
    ws.close(1000, 'bye');
    expect(await closed).toMatchObject({ code: 1000 });
    await until(() => t.edge.traffic('blue').websockets === 0, { timeout: 15_000 });

    const line = await t.logs.waitFor((l) => l.request_id === 'ws-1' && l.msg === 'request');
    expect(line).toMatchObject({ slot: 'blue', method: 'GET', path: '/live', status: 101 });
  });

  it('sends the handshake to the slot with forwarded headers and without the client slot header', async () => {
    let seen: Record<string, string | string[] | undefined> = {};
    t.blue.wss.once('headers', (_headers, req) => (seen = req.headers));
    const { ws } = await openWebSocket(`ws://127.0.0.1:${t.port}/live`, {
      'x-togather-slot': 'green',
      'x-forwarded-for': '198.51.100.7',
    });
    expect(seen['x-togather-slot']).toBeUndefined();
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(String(seen.connection).toLowerCase()).toBe('upgrade');
    expect(seen.upgrade).toBe('websocket');
    expect(seen['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    ws.close();
  });

  it('passes a close code chosen by the slot to the client', async () => {
    const { ws } = await openWebSocket(`ws://127.0.0.1:${t.port}/live`);
    const closed = closeOf(ws);
    ws.send('close:4000');
    expect(await closed).toEqual({ code: 4000, reason: 'asked to' });
    await until(() => t.edge.traffic('blue').websockets === 0, { timeout: 15_000 });
  });

  it('relays a refused handshake with the slot header', async () => {
    const answer = await refusedWebSocket(`ws://127.0.0.1:${t.port}/ws-refused`);
    expect(answer.status).toBe(401);
    expect(answer.headers['x-togather-slot']).toBe('blue');
    await until(() => t.edge.traffic('blue').websockets === 0, { timeout: 15_000 });
  });

  it('answers 400 unsupported_upgrade to an upgrade that is not WebSocket', async () => {
    const answer = await rawHttp(
      t.port,
      'GET /echo HTTP/1.1\r\nHost: edge.test\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nX-Request-Id: h2c-1\r\n\r\n',
    );
    expect(answer.status).toBe(400);
    expect(answer.headers['x-togather-slot']).toBe('blue');
    expect(JSON.parse(answer.body)).toEqual({
      error: 'unsupported_upgrade',
      slot: 'blue',
      request_id: 'h2c-1',
    });
  });

  it('closes open WebSockets with 1001 when the proxy shuts down', async () => {
    const own = await startTestEdge({ blueUrl: t.blue.url, greenUrl: t.green.url });
    const { ws } = await openWebSocket(`ws://127.0.0.1:${own.port}/live`);
    const closed = closeOf(ws);
    await own.stop();
    expect(await closed).toEqual({ code: 1001, reason: 'proxy shutting down' });
  });
});

describe('WebSocket handshake failures', () => {
  let t: SlotsAndEdge;

  beforeAll(async () => {
    t = await twoSlotsAndEdge({ urls: { green: `http://127.0.0.1:${await closedPort()}` } });
    await t.switchTo('green');
  });

  afterAll(() => t?.close());

  it('answers 502 upstream_unreachable when the slot is down', async () => {
    const answer = await refusedWebSocket(`ws://127.0.0.1:${t.port}/live`);
    expect(answer.status).toBe(502);
    expect(answer.headers['x-togather-slot']).toBe('green');
    const body = JSON.parse(answer.body) as { request_id: string };
    expect(body).toEqual({
      error: 'upstream_unreachable',
      slot: 'green',
      request_id: body.request_id,
    });
    expect(await t.metrics()).toMatch(
      /togather_proxy_requests_total\{slot="green",method="GET",code="502"\} 1/,
    );
    await until(() => t.edge.traffic('green').websockets === 0, { timeout: 15_000 });
  });
});

/**
 * A slot speaking raw WebSocket frames, so a test can leave a frame half
 * sent: after the handshake it sends the first `split` bytes of a text frame
 * and the rest only when `finish()` is called.
 */
class HalfFrameSlot {
  private socket: Socket | null = null;
  private rest: Buffer = Buffer.alloc(0);

  private constructor(readonly server: TcpServer) {}

  static async start(message: string, split: number): Promise<HalfFrameSlot> {
    const payload = Buffer.from(message);
    const frame = Buffer.concat([Buffer.from([0x81, payload.length]), payload]);
    const server = createTcpServer();
    const slot = new HalfFrameSlot(server);
    server.on('connection', (socket) => {
      socket.on('error', () => undefined);
      let head = '';
      socket.on('data', (chunk: Buffer) => {
        if (slot.socket === socket) return;
        head += chunk.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        if (!/\r\nupgrade: *websocket\r\n/i.test(head)) {
          // Not a handshake (the proxy's health probe): a plain answer, and this connection is done.
          socket.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
          return;
        }
        const key = /sec-websocket-key: *(\S+)/i.exec(head)?.[1] ?? '';
        const accept = createHash('sha1')
          .update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
          .digest('base64');
        socket.write(
          'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
            `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
        );
        socket.write(frame.subarray(0, split));
        slot.rest = frame.subarray(split);
        slot.socket = socket;
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    return slot;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  get connected(): boolean {
    return this.socket !== null;
  }

  finish(): void {
    this.socket?.write(this.rest);
  }

  async close(): Promise<void> {
    this.socket?.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

describe('WebSocket close at the drain timeout, mid-frame', () => {
  it('finishes the frame in progress before sending the close frame', async () => {
    const slot = await HalfFrameSlot.start('hello, whole frame', 7);
    const green = await FakeSlot.start('green');
    const t = await startTestEdge({
      blueUrl: slot.url,
      greenUrl: green.url,
      env: { DRAIN_TIMEOUT: '300ms' },
    });
    try {
      const { ws } = await openWebSocket(`ws://127.0.0.1:${t.port}/live`);
      const messages: string[] = [];
      ws.on('message', (data) => messages.push(String(data)));
      const closed = closeOf(ws);
      await until(() => slot.connected, { timeout: 15_000 });

      const state = await t.switchTo('green');
      // The drain timeout passes while the slot is in the middle of a frame.
      await t.logs.waitFor((l) => l.msg === 'slot switched' && l.epoch === state.epoch);
      slot.finish();

      expect(await closed).toEqual({ code: 1012, reason: 'service restart' });
      expect(messages).toEqual(['hello, whole frame']);
    } finally {
      await t.stop();
      await slot.close();
      await green.close();
    }
  });

  it('cuts the tunnel when the frame in progress never ends', async () => {
    const slot = await HalfFrameSlot.start('never finished', 3);
    const green = await FakeSlot.start('green');
    const t = await startTestEdge({
      blueUrl: slot.url,
      greenUrl: green.url,
      env: { DRAIN_TIMEOUT: '300ms' },
    });
    try {
      const { ws } = await openWebSocket(`ws://127.0.0.1:${t.port}/live`);
      ws.on('error', () => undefined);
      const closed = closeOf(ws);
      await until(() => slot.connected, { timeout: 15_000 });
      await t.switchTo('green');
      // No close frame could be sent without corrupting the frame: the connection is cut.
      expect((await closed).code).toBe(1006);
    } finally {
      await t.stop();
      await slot.close();
      await green.close();
    }
  });
});
