/**
 * The soak's app slot: the benchmark upstream (bench/upstream.ts: `/small`,
 * `/64k`, `/health`) plus WebSockets on any path, each text message echoed
 * back as `<slot>:<message>`. Its own process:
 * `UPSTREAM_PORT=… UPSTREAM_SLOT=blue node dist/bench/soak-upstream.js`.
 */
import { pathToFileURL } from 'node:url';
import { WebSocketServer } from 'ws';
import { createUpstreamServer } from './upstream.js';

function main(): void {
  const port = Number(process.env.UPSTREAM_PORT ?? '0');
  const slot = process.env.UPSTREAM_SLOT ?? 'blue';
  const server = createUpstreamServer(slot);
  const sockets = new WebSocketServer({ server });
  sockets.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => {
      if (!isBinary) ws.send(`${slot}:${data.toString()}`);
    });
    ws.on('error', () => undefined);
  });
  server.listen(port, '127.0.0.1', () => {
    const address = server.address();
    const bound = typeof address === 'object' && address ? address.port : port;
    process.stdout.write(`${JSON.stringify({ upstream: 'listening', slot, port: bound })}\n`);
  });
  const shutdown = () => {
    for (const ws of sockets.clients) ws.terminate();
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
