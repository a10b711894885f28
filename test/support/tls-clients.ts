import { connect as connectHttp2 } from 'node:http2';
import { Agent, request, type RequestOptions } from 'node:https';
import type { ConnectionOptions, TLSSocket } from 'node:tls';

export interface TlsAnswer {
  status: number;
  body: string;
  /** Serial of the certificate the server presented, upper-case hex. */
  serial: string;
  /** ALPN result: 'h2', 'http/1.1', or false/null when none was agreed. */
  alpn: string | boolean | null;
  /** HTTP/1.1: the request went over a connection used before (keep-alive). */
  reused?: boolean;
}

export interface TlsTarget {
  port: number;
  /** SNI and the name the certificate is checked against; omitted: no SNI. */
  servername?: string;
  /** Roots to verify the chain with (pebble's root, a self-signed certificate). */
  ca: string | string[];
  path?: string;
}

/** One HTTP/1.1 request over TLS (ALPN offers only http/1.1); the chain is verified. */
export function httpsGet(target: TlsTarget, agent: Agent | false = false): Promise<TlsAnswer> {
  return new Promise((resolve, reject) => {
    const options: RequestOptions & ConnectionOptions = {
      host: '127.0.0.1',
      port: target.port,
      path: target.path ?? '/',
      servername: target.servername ?? '',
      ca: target.ca,
      ALPNProtocols: ['http/1.1'],
      agent,
      // Without SNI there is no name to check; the chain is still verified.
      ...(target.servername ? {} : { checkServerIdentity: () => undefined }),
    };
    const req = request(options, (res) => {
      const socket = res.socket as TLSSocket;
      const serial = socket.getPeerCertificate().serialNumber;
      const alpn = socket.alpnProtocol;
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('error', reject);
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body, serial, alpn, reused: req.reusedSocket }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

/** A keep-alive agent for httpsGet, one connection reused while it lives. */
export function keepAliveAgent(target: TlsTarget): Agent {
  return new Agent({ keepAlive: true, maxSockets: 1, ca: target.ca });
}

/** One HTTP/2 request (ALPN h2); the chain is verified. */
export function h2Get(target: TlsTarget): Promise<TlsAnswer> {
  return new Promise((resolve, reject) => {
    const session = connectHttp2(`https://127.0.0.1:${target.port}`, {
      servername: target.servername,
      ca: target.ca,
    });
    session.on('error', reject);
    const stream = session.request({ ':path': target.path ?? '/' });
    let status = 0;
    let body = '';
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    stream.on('error', reject);
    stream.on('end', () => {
      const socket = session.socket as TLSSocket;
      const answer = {
        status,
        body,
        serial: socket.getPeerCertificate().serialNumber,
        alpn: session.alpnProtocol ?? false,
      };
      session.close();
      resolve(answer);
    });
  });
}

export interface HttpsAnswer {
  status: number;
  headers: import('node:http').IncomingHttpHeaders;
  body: string;
  alpn: string | false | null;
}

/** One HTTP/1.1 request over TLS to 127.0.0.1 (SNI localhost), with headers and a body. */
export function httpsRequest(
  port: number,
  ca: string,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<HttpsAnswer> {
  const requestOptions: RequestOptions & ConnectionOptions = {
    host: '127.0.0.1',
    port,
    path,
    method: options.method ?? 'GET',
    headers: options.headers,
    servername: 'localhost',
    ca,
    ALPNProtocols: ['http/1.1'],
    agent: false,
  };
  return new Promise((resolve, reject) => {
    const req = request(requestOptions, (res) => {
      const alpn = (res.socket as TLSSocket).alpnProtocol;
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('error', reject);
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, alpn }),
      );
    });
    req.on('error', reject);
    req.end(options.body);
  });
}
