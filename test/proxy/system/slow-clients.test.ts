import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  expectProxyError,
  expectServedNormally,
  proxyBefore,
  rawSlots,
} from '../../support/hostile.js';
import { RawClient, sleep } from '../../support/raw-client.js';
import { until } from '../../support/wait.js';

/**
 * Slow and idle clients against `togather proxy` processes with short
 * client-side limits: headers trickled byte by byte are cut at
 * HEADERS_TIMEOUT, a body trickled forever at REQUEST_TIMEOUT, an idle
 * keep-alive connection at KEEP_ALIVE_TIMEOUT, and idle connections beyond
 * MAX_CONNECTIONS are closed at once while the proxy keeps serving.
 */

const HEADERS_TIMEOUT_MS = 1500;
const REQUEST_TIMEOUT_MS = 3000;
const KEEP_ALIVE_TIMEOUT_MS = 1000;
/** How late a cut may come: Node checks the timeouts on an interval. */
const SLACK_MS = 2500;

const slots = rawSlots();

describe('client timeouts', () => {
  const edge = proxyBefore(slots, {
    HEADERS_TIMEOUT: `${HEADERS_TIMEOUT_MS}ms`,
    REQUEST_TIMEOUT: `${REQUEST_TIMEOUT_MS}ms`,
    KEEP_ALIVE_TIMEOUT: `${KEEP_ALIVE_TIMEOUT_MS}ms`,
  });

  it('cuts headers trickled one byte at a time at HEADERS_TIMEOUT with 408', async () => {
    const client = await RawClient.connect(edge.proxy.port);
    try {
      const head = `GET /trickle HTTP/1.1\r\nHost: edge.test\r\nX-Slow: ${'s'.repeat(200)}\r\n\r\n`;
      const sent = client.trickle(head, 100);
      expect(await client.waitForClose(HEADERS_TIMEOUT_MS + SLACK_MS)).toBe(true);
      expect(await sent).toBeLessThan(head.length);
      expect(client.openForMs).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 100);
      const answers = client.answers();
      expect(answers).toHaveLength(1);
      expectProxyError(answers[0], 408, 'request_timeout');
    } finally {
      client.destroy();
    }
    expect(slots.blue.received('/trickle')).toEqual([]);
    expect(slots.blue.rawText()).not.toContain('/trickle');
    await expectServedNormally(edge.proxy, slots.blue);
  });

  it('cuts a connection that never sends a byte at HEADERS_TIMEOUT', async () => {
    const client = await RawClient.connect(edge.proxy.port);
    try {
      expect(await client.waitForClose(HEADERS_TIMEOUT_MS + SLACK_MS)).toBe(true);
      expect(client.openForMs).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 100);
    } finally {
      client.destroy();
    }
    await expectServedNormally(edge.proxy, slots.blue);
  });

  it('cuts a body trickled forever at REQUEST_TIMEOUT and aborts its slot request', async () => {
    const client = await RawClient.connect(edge.proxy.port);
    const connectionsBefore = slots.blue.connectionsAccepted;
    try {
      client.write('POST /slow-body HTTP/1.1\r\nHost: edge.test\r\nContent-Length: 100000\r\n\r\n');
      const sent = client.trickle('b'.repeat(1000), 100);
      expect(await client.waitForClose(REQUEST_TIMEOUT_MS + SLACK_MS)).toBe(true);
      expect(await sent).toBeLessThan(1000);
      expect(client.openForMs).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 100);
      const answers = client.answers();
      expect(answers).toHaveLength(1);
      expectProxyError(answers[0], 408, 'request_timeout');
    } finally {
      client.destroy();
    }
    // The head was streamed to the slot; the request never completed there and
    // the connection that carried it was closed, never reused.
    expect(slots.blue.received('/slow-body')).toEqual([]);
    const carrier = slots.blue.connections().find((c) => c.text.includes('/slow-body'));
    expect(carrier).toBeDefined();
    await until(() => !slots.blue.connections().find((c) => c.id === carrier!.id)!.open);
    expect(slots.blue.connectionsAccepted).toBeGreaterThan(connectionsBefore);
    await expectServedNormally(edge.proxy, slots.blue);
    expect(slots.blue.unreadable).toEqual([]);
  });

  it('closes an idle keep-alive connection after KEEP_ALIVE_TIMEOUT', async () => {
    const client = await RawClient.connect(edge.proxy.port);
    try {
      client.write('GET /keep HTTP/1.1\r\nHost: edge.test\r\n\r\n');
      expect((await client.waitForAnswers(1)).map((a) => a.status)).toEqual([200]);
      const answeredAt = Date.now();
      expect(await client.waitForClose(KEEP_ALIVE_TIMEOUT_MS + SLACK_MS)).toBe(true);
      expect(Date.now() - answeredAt).toBeGreaterThanOrEqual(KEEP_ALIVE_TIMEOUT_MS - 100);
    } finally {
      client.destroy();
    }
  });
});

describe('a client that pipelines and never reads', () => {
  const edge = proxyBefore(slots);

  it('gets its pipelined requests forwarded one answer at a time, not all at once', async () => {
    slots.blue.reset();
    const baselineFds = edge.proxy.openFds();
    const rss = () =>
      Number(readFileSync(`/proc/${edge.proxy.pid}/statm`, 'utf8').split(' ')[1]) * 4096;
    const rssBefore = rss();
    const clients: RawClient[] = [];
    try {
      for (let c = 0; c < 4; c++) {
        const client = await RawClient.connect(edge.proxy.port);
        // Never reads: the answers pile up in the socket buffers, then in the edge.proxy.
        client.socket.pause();
        client.write('GET /big?kb=256 HTTP/1.1\r\nHost: edge.test\r\n\r\n'.repeat(500));
        clients.push(client);
      }
      await sleep(2000);
      const forwarded = slots.blue.received('/big').length;
      console.log(
        `pipelined 4 × 500 requests of 256 KiB answers, never read: ${forwarded} forwarded, proxy RSS +${Math.round((rss() - rssBefore) / 1048576)} MB`,
      );
      // What the socket buffers hold, not the 2,000 sent.
      expect(forwarded).toBeLessThan(200);
      expect(edge.proxy.alive).toBe(true);
    } finally {
      for (const client of clients) client.destroy();
    }
    // The slot connections of answers that had arrived in full stay in the
    // slot's undici pool, idle (closed after UPSTREAM_TIMEOUT, or when the slot
    // closes them): one per client at most. Node's agent returned such a
    // socket to its pool only once the client had read the answer.
    await until(() => edge.proxy.openFds() <= baselineFds + 2 + 4, { timeout: 5000 });
    await expectServedNormally(edge.proxy, slots.blue);
  });
});

describe('connection limit', () => {
  const LIMIT = 20;
  const edge = proxyBefore(slots, {
    MAX_CONNECTIONS: String(LIMIT),
    HEADERS_TIMEOUT: '20s',
    REQUEST_TIMEOUT: '30s',
  });

  it('closes connections beyond MAX_CONNECTIONS at once and serves again when some end', async () => {
    const idle: RawClient[] = [];
    try {
      for (let i = 0; i < LIMIT; i++) idle.push(await RawClient.connect(edge.proxy.port));
      await sleep(200);
      expect(idle.filter((c) => c.closed)).toEqual([]);

      const dropped: RawClient[] = [];
      for (let i = 0; i < 5; i++) {
        const extra = await RawClient.connect(edge.proxy.port);
        extra.write('GET /over-limit HTTP/1.1\r\nHost: edge.test\r\n\r\n');
        dropped.push(extra);
      }
      for (const extra of dropped) {
        expect(await extra.waitForClose(5000)).toBe(true);
        expect(extra.received).toBe('');
      }
      expect(slots.blue.received('/over-limit')).toEqual([]);
      expect(await edge.proxy.metric('togather_proxy_dropped_connections_total')).toBe(5);
      // The idle ones are untouched and can still be used.
      expect(idle.filter((c) => c.closed)).toEqual([]);
      idle[0]!.write('GET /idle-used HTTP/1.1\r\nHost: edge.test\r\n\r\n');
      expect((await idle[0]!.waitForAnswers(1)).map((a) => a.status)).toEqual([200]);

      for (const client of idle.splice(0, 5)) client.destroy();
      await sleep(200);
      await expectServedNormally(edge.proxy, slots.blue);
    } finally {
      for (const client of idle) client.destroy();
    }
  });
});
