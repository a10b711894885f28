import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect as connectHttp2 } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../common/logger.js';
import type { CertificateSource } from '../../../proxy/tls/certificate-source.js';
import { createFilePairSource } from '../../../proxy/tls/file-pair-source.js';
import { createTlsListener, type TlsListener } from '../../../proxy/tls/tls-listener.js';
import { TlsMetrics } from '../../../proxy/tls/tls-metrics.js';
import { selfSigned } from '../../support/pebble.js';
import { h2Get, httpsGet } from '../../support/tls-clients.js';

const logger = createLogger({ level: 'silent' });

interface Handshake {
  ok: boolean;
  protocol?: string | null;
  cipher?: string;
  alpn?: string | false | null;
  error?: string;
}

/** A bare TLS handshake; resolves with what was agreed or the error. */
function handshake(port: number, options: ConnectionOptions): Promise<Handshake> {
  return new Promise((resolve) => {
    const socket: TLSSocket = connect({ host: '127.0.0.1', port, ...options }, () => {
      resolve({
        ok: true,
        protocol: socket.getProtocol(),
        cipher: socket.getCipher().standardName,
        alpn: socket.alpnProtocol,
      });
      socket.destroy();
    });
    socket.on('error', (error) => resolve({ ok: false, error: error.message }));
  });
}

describe('TLS listener', () => {
  let dir: string;
  let ca: string;
  let source: CertificateSource;
  let listener: TlsListener;
  let port: number;
  let upgrades = 0;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'togather-tls-listener-'));
    // RSA: the suites without forward secrecy exist only with RSA certificates.
    const pair = await selfSigned(dir, 'localhost', { keyType: 'rsa' });
    ca = await readFile(pair.certFile, 'utf8');
    source = await createFilePairSource({
      ...pair,
      logger,
      metrics: new TlsMetrics(new Registry()),
    });
    listener = createTlsListener({
      source,
      host: '127.0.0.1',
      port: 0,
      logger,
      http1: { maxHeaderSize: 4096 },
      onRequest: (req, res) => res.end(`hello ${req.httpVersion}`),
      onUpgrade: (req, socket) => {
        upgrades += 1;
        socket.end(
          `HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${req.headers.upgrade}\r\nConnection: Upgrade\r\n\r\n`,
        );
      },
    });
    port = (await listener.listen()).port;
  });

  afterAll(async () => {
    await listener?.close(1000);
    await source?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('speaks TLS 1.3 and 1.2 with AEAD suites only', async () => {
    expect(await handshake(port, { ca, servername: 'localhost' })).toMatchObject({
      ok: true,
      protocol: 'TLSv1.3',
      cipher: 'TLS_AES_128_GCM_SHA256',
    });
    expect(
      await handshake(port, { ca, servername: 'localhost', maxVersion: 'TLSv1.2' }),
    ).toMatchObject({
      ok: true,
      protocol: 'TLSv1.2',
      cipher: 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256',
    });
  });

  it('refuses TLS 1.1 and suites without forward secrecy that a permissive server would accept', async () => {
    const tls11: ConnectionOptions = {
      ca,
      servername: 'localhost',
      minVersion: 'TLSv1.1',
      maxVersion: 'TLSv1.1',
      ciphers: 'DEFAULT@SECLEVEL=0',
    };
    const rsaKx: ConnectionOptions = {
      ca,
      servername: 'localhost',
      maxVersion: 'TLSv1.2',
      ciphers: 'AES128-SHA',
    };
    const pem = source.defaultCertificate()!.pem;
    // The control: Node's defaults (and an old minimum) let both through.
    const permissive = createServer({
      ...pem,
      minVersion: 'TLSv1',
      ciphers: 'DEFAULT@SECLEVEL=0',
    });
    permissive.on('secureConnection', (socket: TLSSocket) => socket.end());
    await new Promise<void>((resolve) => permissive.listen(0, '127.0.0.1', resolve));
    const control = (permissive.address() as { port: number }).port;
    try {
      expect(await handshake(control, tls11)).toMatchObject({ ok: true, protocol: 'TLSv1.1' });
      expect(await handshake(control, rsaKx)).toMatchObject({
        ok: true,
        cipher: 'TLS_RSA_WITH_AES_128_CBC_SHA',
      });
    } finally {
      permissive.close();
    }
    const old = await handshake(port, tls11);
    expect(old.ok).toBe(false);
    expect(old.error).toMatch(/protocol version|unsupported protocol/i);
    const weak = await handshake(port, rsaKx);
    expect(weak.ok).toBe(false);
    expect(weak.error).toMatch(/handshake failure/i);
  });

  it('offers h2 and http/1.1 by ALPN, and serves clients that ask for none over HTTP/1.1', async () => {
    expect(
      await handshake(port, { ca, servername: 'localhost', ALPNProtocols: ['h2', 'http/1.1'] }),
    ).toMatchObject({
      alpn: 'h2',
    });
    const h2 = await h2Get({ port, servername: 'localhost', ca });
    expect(h2).toMatchObject({ status: 200, body: 'hello 2.0', alpn: 'h2' });
    const h1 = await httpsGet({ port, servername: 'localhost', ca });
    expect(h1).toMatchObject({ status: 200, body: 'hello 1.1', alpn: 'http/1.1' });
    expect(await handshake(port, { ca, servername: 'localhost' })).toMatchObject({
      ok: true,
      alpn: false,
    });
    const serial = new X509Certificate(ca).serialNumber.toUpperCase();
    expect(h1.serial).toBe(serial);
  });

  it('hands HTTP/1.1 upgrades to the upgrade hook and applies the HTTP/1.1 header limit', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
        socket.write(
          'GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
        );
      });
      let text = '';
      socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\nUpgrade: websocket\r\n/);
    expect(upgrades).toBe(1);

    const big = await httpsGet({
      port,
      servername: 'localhost',
      ca,
      path: `/?q=${'x'.repeat(5000)}`,
    });
    expect(big.status).toBe(431);
  });

  it('without http2 it is an HTTPS listener that offers only http/1.1', async () => {
    const plain = createTlsListener({
      source,
      host: '127.0.0.1',
      port: 0,
      logger,
      http2: false,
      onRequest: (req, res) => res.end(`hello ${req.httpVersion}`),
    });
    const { port: plainPort } = await plain.listen();
    try {
      expect(
        await handshake(plainPort, {
          ca,
          servername: 'localhost',
          ALPNProtocols: ['h2', 'http/1.1'],
        }),
      ).toMatchObject({ ok: true, alpn: 'http/1.1' });
      expect(await httpsGet({ port: plainPort, servername: 'localhost', ca })).toMatchObject({
        status: 200,
        body: 'hello 1.1',
      });
    } finally {
      await plain.close(1000);
    }
  });

  it('close() ends HTTP/2 sessions with GOAWAY and stops listening', async () => {
    const closing = createTlsListener({
      source,
      host: '127.0.0.1',
      port: 0,
      logger,
      onRequest: (_req, res) => res.end('ok'),
    });
    const { port: closingPort } = await closing.listen();
    const session = connectHttp2(`https://127.0.0.1:${closingPort}`, {
      ca,
      servername: 'localhost',
    });
    await new Promise((resolve) => session.once('connect', resolve));
    const goaway = new Promise((resolve) => session.once('goaway', resolve));
    const started = Date.now();
    await closing.close(5000);
    await goaway;
    expect(Date.now() - started).toBeLessThan(4000);
    expect(closing.server.listening).toBe(false);
    session.destroy();
  });
});
