import WebSocket from 'ws';

/** WebSocket clients (the `ws` package) for tests of the proxy's tunnels. */

export interface Opened {
  ws: WebSocket;
  /** The headers of the 101 answer. */
  headers: Record<string, string | string[] | undefined>;
}

/** Opens a WebSocket; resolves once the handshake succeeded. */
export function openWebSocket(url: string, headers: Record<string, string> = {}): Promise<Opened> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    let upgradeHeaders: Opened['headers'] = {};
    ws.once('upgrade', (res) => (upgradeHeaders = res.headers));
    ws.once('open', () => resolve({ ws, headers: upgradeHeaders }));
    ws.once('error', reject);
  });
}

/** A handshake the server refused: the status, headers and body of its answer. */
export function refusedWebSocket(
  url: string,
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => reject(new Error('the handshake succeeded')));
    ws.once('error', () => undefined);
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
  });
}

export function nextMessage(ws: WebSocket): Promise<WebSocket.RawData> {
  return new Promise((resolve) => ws.once('message', (data) => resolve(data)));
}

export function closeOf(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
  );
}
