import { describe, expect, it } from 'vitest';
import { expectProxyError, hostileEdge } from '../../support/hostile.js';
import { converse } from '../../support/raw-client.js';

/**
 * Malformed and oversize requests on the public listener of a `togather
 * proxy` process, over raw TCP: each gets its exact status and JSON body
 * (or a closed connection), nothing of it reaches the slot unless the proxy
 * could read it as a valid request, and the next client is served normally.
 */

const HEAD = 'Host: edge.test\r\n';
const MAX_HEADER_SIZE = 8192;

const edge = hostileEdge({
  MAX_HEADER_SIZE: String(MAX_HEADER_SIZE),
  HEADERS_TIMEOUT: '2s',
  REQUEST_TIMEOUT: '3s',
});

/** Sends `bytes`, expects exactly one proxy error answer, a closed connection and nothing upstream. */
async function expectRefused(bytes: string, status: number, error: string): Promise<void> {
  const reply = await converse(edge.proxy.port, bytes);
  expect(reply.answers, reply.received).toHaveLength(1);
  expectProxyError(reply.answers[0], status, error);
  expect(reply.closed).toBe(true);
  expect(edge.blue.traffic()).toEqual([]);
}

describe('oversize requests', () => {
  it('431 for a header block over MAX_HEADER_SIZE', async () => {
    await expectRefused(
      `GET /big HTTP/1.1\r\n${HEAD}X-Big: ${'b'.repeat(MAX_HEADER_SIZE)}\r\n\r\n`,
      431,
      'request_header_fields_too_large',
    );
  });

  it('431 for many small header lines over MAX_HEADER_SIZE', async () => {
    await expectRefused(
      // Node counts names and values, not separators, against the limit.
      `GET /many HTTP/1.1\r\n${HEAD}${'x-many: 1\r\n'.repeat(MAX_HEADER_SIZE / 4)}\r\n`,
      431,
      'request_header_fields_too_large',
    );
  });

  it('414 for a request target over the limit', async () => {
    await expectRefused(
      `GET /${'u'.repeat(2 * MAX_HEADER_SIZE)} HTTP/1.1\r\n${HEAD}\r\n`,
      414,
      'uri_too_long',
    );
  });

  it('414 for an absolute-form target over the limit', async () => {
    await expectRefused(
      `GET http://edge.test/${'u'.repeat(2 * MAX_HEADER_SIZE)} HTTP/1.1\r\n${HEAD}\r\n`,
      414,
      'uri_too_long',
    );
  });

  it('414 for a long target on a keep-alive connection after a served request', async () => {
    const reply = await converse(
      edge.proxy.port,
      `GET /first HTTP/1.1\r\n${HEAD}\r\nGET /${'u'.repeat(2 * MAX_HEADER_SIZE)} HTTP/1.1\r\n${HEAD}\r\n`,
      { answers: 2 },
    );
    expect(reply.answers.map((a) => a.status)).toEqual([200, 414]);
    expectProxyError(reply.answers[1], 414, 'uri_too_long');
    expect(edge.blue.traffic().map((r) => r.target)).toEqual(['/first']);
  });

  it('forwards a target just under the limit whole', async () => {
    const target = `/long-${'u'.repeat(MAX_HEADER_SIZE - 200)}`;
    const reply = await converse(
      edge.proxy.port,
      `GET ${target} HTTP/1.1\r\n${HEAD}Connection: close\r\n\r\n`,
    );
    expect(reply.answers.map((a) => a.status)).toEqual([200]);
    expect(edge.blue.traffic().map((r) => r.target)).toEqual([target]);
  });
});

describe('methods', () => {
  it.each([
    ['a method with a character outside the token set', 'G@T / HTTP/1.1'],
    ['an empty method', ' / HTTP/1.1'],
    ['a method with a NUL', 'GE\0T / HTTP/1.1'],
    ['a lower-case method', 'get / HTTP/1.1'],
    ['a method the parser does not know', 'FROB / HTTP/1.1'],
    ['a space before the method', ' GET / HTTP/1.1'],
    ['no version', 'GET / HTTP/'],
    ['version 1.2', 'GET / HTTP/1.2'],
  ])('400 for %s', async (_name, line) => {
    await expectRefused(`${line}\r\n${HEAD}\r\n`, 400, 'bad_request');
  });

  it('forwards a request line with two spaces before the target re-written with one', async () => {
    const reply = await converse(
      edge.proxy.port,
      `GET  /spaces HTTP/1.1\r\n${HEAD}Connection: close\r\n\r\n`,
    );
    expect(reply.answers.map((a) => a.status)).toEqual([200]);
    expect(edge.blue.rawText()).toContain('GET /spaces HTTP/1.1\r\n');
  });

  it('405 to CONNECT, the listener is not a forward proxy', async () => {
    await expectRefused(
      'CONNECT slot.internal:443 HTTP/1.1\r\nHost: slot.internal:443\r\n\r\n',
      405,
      'method_not_allowed',
    );
  });
});

describe('control characters', () => {
  it.each([
    ['a NUL in a header name', `X-A\0b: c`],
    ['a NUL in a header value', `X-A: b\0c`],
    ['a control character in a header value', 'X-A: b\x01c'],
    ['DEL in a header value', 'X-A: b\x7fc'],
    ['an escape sequence in a header value', 'X-A: \x1b[31mred'],
    ['a control character in a header name', 'X-\x01A: b'],
    ['a header line without a colon', 'X-A b'],
    ['a header line with an empty name', ': b'],
  ])('400 for %s', async (_name, line) => {
    await expectRefused(`GET /ctl HTTP/1.1\r\n${HEAD}${line}\r\n\r\n`, 400, 'bad_request');
  });

  it.each([
    ['a NUL', 'GET /a\0b HTTP/1.1'],
    ['a tab', 'GET /a\tb HTTP/1.1'],
    ['DEL', 'GET /a\x7fb HTTP/1.1'],
    ['a byte above 0x7f', 'GET /caf\xe9 HTTP/1.1'],
  ])('400 for %s in the request target', async (_name, line) => {
    await expectRefused(`${line}\r\n${HEAD}\r\n`, 400, 'bad_request');
  });

  it('passes obs-text (bytes above 0x7f) in a header value through unchanged', async () => {
    const reply = await converse(
      edge.proxy.port,
      `GET /obs HTTP/1.1\r\n${HEAD}X-Name: caf\xe9\r\nConnection: close\r\n\r\n`,
    );
    expect(reply.answers.map((a) => a.status)).toEqual([200]);
    const [request] = edge.blue.received('/obs');
    expect(request!.headers).toContainEqual(['x-name', 'caf\xe9']);
  });

  it('passes percent-encoded bytes in the target through undecoded', async () => {
    const target = '/enc/%00%0d%0a%2e%2e%2f?q=%00';
    const reply = await converse(
      edge.proxy.port,
      `GET ${target} HTTP/1.1\r\n${HEAD}Connection: close\r\n\r\n`,
    );
    expect(reply.answers.map((a) => a.status)).toEqual([200]);
    expect(edge.blue.traffic().map((r) => r.target)).toEqual([target]);
  });
});

describe('Host', () => {
  it('400 missing_host_header for HTTP/1.1 without Host', async () => {
    const reply = await converse(edge.proxy.port, 'GET /nohost HTTP/1.1\r\n\r\n');
    expectProxyError(reply.answers[0], 400, 'missing_host_header');
    expect(edge.blue.traffic()).toEqual([]);
  });

  it('400 duplicate_host_header for two Host lines', async () => {
    const reply = await converse(
      edge.proxy.port,
      'GET /twohosts HTTP/1.1\r\nHost: edge.test\r\nHost: internal.admin\r\n\r\n',
    );
    expectProxyError(reply.answers[0], 400, 'duplicate_host_header');
    expect(edge.blue.traffic()).toEqual([]);
  });

  it.each([
    ['a space', 'edge test'],
    ['a path', 'edge.test/admin'],
    ['userinfo', 'user@edge.test'],
    ['a port that is not a number', 'edge.test:80x'],
    ['an unclosed IP literal', '[::1'],
  ])('400 invalid_host_header for a Host with %s', async (_name, host) => {
    const reply = await converse(edge.proxy.port, `GET /badhost HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    expectProxyError(reply.answers[0], 400, 'invalid_host_header');
    expect(edge.blue.traffic()).toEqual([]);
  });

  it('forwards an HTTP/1.0 request without Host', async () => {
    const reply = await converse(edge.proxy.port, 'GET /old HTTP/1.0\r\n\r\n');
    expect(reply.answers.map((a) => a.status)).toEqual([200]);
    expect(reply.closed).toBe(true);
    expect(edge.blue.traffic().map((r) => r.target)).toEqual(['/old']);
  });
});

describe('request targets', () => {
  it('turns an absolute-form target into origin form, the authority replacing Host', async () => {
    const reply = await converse(
      edge.proxy.port,
      'GET http://app.example:8443/abs?x=1 HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n',
    );
    expect(reply.answers.map((a) => a.status)).toEqual([200]);
    const [request] = edge.blue.received('/abs');
    expect(request!.target).toBe('/abs?x=1');
    expect(request!.headers).toContainEqual(['host', 'app.example:8443']);
  });

  it('drops userinfo of an absolute-form target', async () => {
    const reply = await converse(
      edge.proxy.port,
      'GET http://user:secret@app.example/userinfo HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n',
    );
    expect(reply.answers.map((a) => a.status)).toEqual([200]);
    expect(edge.blue.rawText()).not.toContain('secret');
    expect(edge.blue.received('/userinfo')[0]!.headers).toContainEqual(['host', 'app.example']);
  });

  it.each([
    ['authority-form with GET', 'GET edge.test:80 HTTP/1.1'],
    ['a relative path', 'GET relative/path HTTP/1.1'],
  ])('400 for %s (the parser refuses it)', async (_name, line) => {
    await expectRefused(`${line}\r\n${HEAD}\r\n`, 400, 'bad_request');
  });

  it.each([
    ['asterisk-form with GET', 'GET * HTTP/1.1'],
    ['asterisk-form with OPTIONS', 'OPTIONS * HTTP/1.1'],
    ['a non-http absolute form', 'GET ftp://edge.test/file HTTP/1.1'],
  ])('400 bad_request_target for %s (the connection stays usable)', async (_name, line) => {
    const reply = await converse(
      edge.proxy.port,
      `${line}\r\n${HEAD}\r\nGET /same-connection HTTP/1.1\r\n${HEAD}Connection: close\r\n\r\n`,
      { answers: 2 },
    );
    expect(reply.answers.map((a) => a.status)).toEqual([400, 200]);
    expectProxyError(reply.answers[0], 400, 'bad_request_target');
    expect(edge.blue.traffic().map((r) => r.target)).toEqual(['/same-connection']);
  });
});

describe('other protocols on the HTTP/1.1 port', () => {
  it('505 for an HTTP/0.9 request line, never forwarded', async () => {
    const reply = await converse(edge.proxy.port, 'GET /nine\r\n\r\n');
    expectProxyError(reply.answers[0], 505, 'http_version_not_supported');
    expect(reply.closed).toBe(true);
    expect(edge.blue.traffic()).toEqual([]);
  });

  it('505 for an HTTP/2.0 request line in HTTP/1 syntax, never forwarded', async () => {
    await expectRefused(`GET /two HTTP/2.0\r\n${HEAD}\r\n`, 505, 'http_version_not_supported');
  });

  it('400 for the HTTP/2 prior-knowledge preface', async () => {
    const settingsFrame = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
    const preface = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), settingsFrame]);
    const reply = await converse(edge.proxy.port, preface);
    expectProxyError(reply.answers[0], 400, 'bad_request');
    expect(reply.closed).toBe(true);
    expect(edge.blue.traffic()).toEqual([]);
  });

  it('400 for a TLS ClientHello on the plain-text port', async () => {
    const hello = Buffer.from('160301020001000200', 'hex');
    await expectRefused(hello.toString('latin1'), 400, 'bad_request');
  });

  it('400 for random binary bytes', async () => {
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => (i * 73 + 11) % 256));
    await expectRefused(bytes.toString('latin1'), 400, 'bad_request');
  });
});
