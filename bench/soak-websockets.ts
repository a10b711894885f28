/**
 * The soak's WebSocket clients through the proxy: short sessions (open, a
 * few echoes, a normal close, again) and long-lived ones that stay open
 * across switches until the drain closes them with 1012 and then reconnect.
 * Every outcome is counted; only the ones listed as unexpected are errors.
 */
import WebSocket from 'ws';
import { sleep } from './processes.js';

/** WebSocket close code 1012, "service restart": the drain of the old slot after a switch. */
const SERVICE_RESTART = 1012;
const NORMAL = 1000;

export interface WebSocketCounts {
  /** Handshakes answered 101. */
  opened: number;
  /** Short sessions that got every echo and closed normally. */
  completed: number;
  /** Echoes received (any session). */
  echoes: number;
  /** Long-lived sessions closed by the drain with 1012 (expected after each switch). */
  drainClosed: number;
  /** Anything else: refused handshakes, missing or wrong echoes, other close codes, socket errors. */
  unexpected: number;
  unexpectedKinds: Record<string, number>;
}

export interface WebSocketLoad {
  readonly counts: WebSocketCounts;
  stop(): Promise<void>;
}

function unexpected(counts: WebSocketCounts, kind: string): void {
  counts.unexpected++;
  counts.unexpectedKinds[kind] = (counts.unexpectedKinds[kind] ?? 0) + 1;
}

/** One session: opens, exchanges `messages` echoes `gapMs` apart, closes; resolves with how it ended. */
function session(
  url: string,
  counts: WebSocketCounts,
  messages: number,
  gapMs: number,
  running: () => boolean,
): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { handshakeTimeout: 10_000 });
    let sent = 0;
    let received = 0;
    let closingByUs = false;
    /** An error was counted already: its close is not counted again. */
    let failed = false;
    let timer: NodeJS.Timeout | undefined;
    const next = () => {
      if (!running() || sent >= messages) {
        closingByUs = true;
        ws.close(NORMAL, 'done');
        return;
      }
      ws.send(`m${sent++}`);
    };
    ws.on('open', () => {
      counts.opened++;
      next();
    });
    ws.on('message', (data) => {
      const text = data.toString();
      const match = /^(blue|green):m(\d+)$/.exec(text);
      if (!match || Number(match[2]) !== received)
        unexpected(counts, `wrong echo ${text.slice(0, 40)}`);
      received++;
      counts.echoes++;
      timer = setTimeout(next, gapMs);
    });
    ws.on('unexpected-response', (_req, res) => {
      failed = true;
      unexpected(counts, `handshake ${res.statusCode ?? '?'}`);
      ws.terminate();
    });
    ws.on('error', (error: NodeJS.ErrnoException) => {
      if (!failed) unexpected(counts, `error ${error.code ?? error.message}`);
      failed = true;
    });
    ws.on('close', (code) => {
      clearTimeout(timer);
      if (closingByUs && code === NORMAL) {
        if (received === sent) counts.completed++;
        else unexpected(counts, 'echo missing at close');
      } else if (code === SERVICE_RESTART) {
        counts.drainClosed++;
      } else if (!failed && !(closingByUs && !running())) {
        unexpected(counts, `closed ${code}`);
      }
      resolve();
    });
  });
}

/**
 * `shortClients` loops of short sessions (5 echoes 50 ms apart) and
 * `longClients` loops of sessions that keep sending one message a second
 * until the drain (or the end) closes them.
 */
export function startWebSocketLoad(
  proxyUrl: string,
  shortClients: number,
  longClients: number,
): WebSocketLoad {
  const url = `${proxyUrl.replace(/^http/, 'ws')}/ws`;
  const counts: WebSocketCounts = {
    opened: 0,
    completed: 0,
    echoes: 0,
    drainClosed: 0,
    unexpected: 0,
    unexpectedKinds: {},
  };
  let active = true;
  const running = () => active;
  const loops = [
    ...Array.from({ length: shortClients }, async () => {
      while (active) {
        await session(url, counts, 5, 50, running);
        await sleep(100);
      }
    }),
    ...Array.from({ length: longClients }, async () => {
      while (active) {
        await session(url, counts, Number.MAX_SAFE_INTEGER, 1000, running);
        await sleep(100);
      }
    }),
  ];
  return {
    counts,
    async stop() {
      active = false;
      await Promise.all(loops);
    },
  };
}
