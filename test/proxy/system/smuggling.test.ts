import { describe, expect, it } from 'vitest';
import { expectProxyError, hostileEdge } from '../../support/hostile.js';
import { converse, RawClient } from '../../support/raw-client.js';
import { until } from '../../support/wait.js';

/**
 * Request smuggling against the public listener of a `togather proxy`
 * process, over raw TCP. Every ambiguous framing is refused before anything
 * reaches the slot; every framing the proxy accepts reaches the slot as
 * exactly the requests the proxy saw, framed one way only. The recording
 * slot reads the bytes with its own strict parser, so a desync on the pooled
 * upstream connection would show as unreadable bytes or a stray request.
 */

const HEAD = 'Host: edge.test\r\n';

const edge = hostileEdge({
  HEADERS_TIMEOUT: '2s',
  REQUEST_TIMEOUT: '2s',
  UPSTREAM_TIMEOUT: '5s',
});

describe('ambiguous framing is refused with 400 before anything reaches the slot', () => {
  const refused: Array<[string, string]> = [
    [
      'Content-Length with Transfer-Encoding: chunked',
      `POST /smuggle HTTP/1.1\r\n${HEAD}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n${HEAD}\r\n`,
    ],
    [
      'Transfer-Encoding: chunked with Content-Length (reverse order)',
      `POST /smuggle HTTP/1.1\r\n${HEAD}Transfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n${HEAD}\r\n`,
    ],
    [
      'two different Content-Length',
      `POST /smuggle HTTP/1.1\r\n${HEAD}Content-Length: 3\r\nContent-Length: 40\r\n\r\nabcGET /smuggled HTTP/1.1\r\n${HEAD}\r\n`,
    ],
    [
      'Content-Length as a list',
      `POST /smuggle HTTP/1.1\r\n${HEAD}Content-Length: 3, 40\r\n\r\nabc`,
    ],
    [
      'Content-Length with a sign',
      `POST /smuggle HTTP/1.1\r\n${HEAD}Content-Length: +3\r\n\r\nabc`,
    ],
    [
      'Content-Length beyond 2^64',
      `POST /smuggle HTTP/1.1\r\n${HEAD}Content-Length: 99999999999999999999999\r\n\r\nabc`,
    ],
    [
      'Transfer-Encoding: chunked, identity',
      `POST /smuggle HTTP/1.1\r\n${HEAD}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`,
    ],
    [
      'Transfer-Encoding: xchunked',
      `POST /smuggle HTTP/1.1\r\n${HEAD}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`,
    ],
    [
      'Transfer-Encoding: identity',
      `POST /smuggle HTTP/1.1\r\n${HEAD}Transfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc`,
    ],
    [
      'Transfer-Encoding given twice',
      `POST /smuggle HTTP/1.1\r\n${HEAD}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    ],
    [
      'whitespace between the header name and the colon',
      `POST /smuggle HTTP/1.1\r\n${HEAD}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n`,
    ],
    [
      'obs-fold header continuation',
      `GET /smuggle HTTP/1.1\r\n${HEAD}X-Folded: a\r\n Transfer-Encoding: chunked\r\n\r\n`,
    ],
    ['bare LF line endings', 'GET /smuggle HTTP/1.1\nHost: edge.test\n\n'],
    ['a bare LF inside the header block', `GET /smuggle HTTP/1.1\r\n${HEAD}X-A: b\nX-B: c\r\n\r\n`],
    ['a bare CR inside a header value', `GET /smuggle HTTP/1.1\r\n${HEAD}X-A: b\rX-B: c\r\n\r\n`],
  ];

  it.each(refused)('%s', async (_name, bytes) => {
    const reply = await converse(edge.proxy.port, bytes);
    expect(reply.answers, reply.received).toHaveLength(1);
    expectProxyError(reply.answers[0], 400, 'bad_request');
    expect(reply.answers[0]!.headers.connection).toBe('close');
    expect(reply.closed).toBe(true);
    expect(edge.blue.traffic()).toEqual([]);
    expect(edge.blue.rawText()).not.toContain('smuggle');
  });
});

describe('a body that breaks its chunked framing is cut: the slot never gets a whole request', () => {
  const broken: Array<[string, string]> = [
    ['a chunk size that is not hex', 'zz\r\nabc\r\n0\r\n\r\n'],
    ['a chunk size beyond 2^64', 'ffffffffffffffffff\r\nabc\r\n0\r\n\r\n'],
    ['chunk lines ended by bare LF', '3\nabc\n0\n\n'],
    ['a chunk longer than its size', '3\r\nabcdef\r\n0\r\n\r\n'],
    ['Content-Length in the chunked trailer', '3\r\nabc\r\n0\r\nContent-Length: 50\r\n\r\n'],
  ];

  it.each(broken)('%s', async (_name, body) => {
    const reply = await converse(
      edge.proxy.port,
      `POST /smuggle HTTP/1.1\r\n${HEAD}Transfer-Encoding: chunked\r\n\r\n${body}GET /smuggled HTTP/1.1\r\n${HEAD}\r\n`,
    );
    expect(reply.answers, reply.received).toHaveLength(1);
    expectProxyError(reply.answers[0], 400, 'bad_request');
    expect(reply.closed).toBe(true);
    // The head may have been streamed to the slot before the bad chunk was
    // read; then the connection that carried it is closed, never reused.
    await until(() =>
      edge.blue.connections().every((c) => !c.text.includes('/smuggle') || !c.open),
    );
    expect(edge.blue.traffic()).toEqual([]);
    expect(edge.blue.rawText()).not.toContain('/smuggled');
  });
});

describe('framing the proxy accepts reaches the slot framed one way only', () => {
  it.each([
    ['leading spaces', 'Transfer-Encoding:   chunked'],
    ['a tab', 'Transfer-Encoding:\tchunked'],
    ['upper case', 'TRANSFER-ENCODING: CHUNKED'],
  ])(
    'Transfer-Encoding with %s is read as chunked and forwarded chunked',
    async (_name, header) => {
      const reply = await converse(
        edge.proxy.port,
        `POST /chunked HTTP/1.1\r\n${HEAD}${header}\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n`,
      );
      expect(reply.answers.map((a) => a.status)).toEqual([200]);
      const [request] = edge.blue.received('/chunked');
      expect(request!.body.toString()).toBe('abcde');
      const framing = request!.headers.filter(([n]) =>
        ['transfer-encoding', 'content-length'].includes(n.toLowerCase()),
      );
      expect(framing.map(([n, v]) => [n.toLowerCase(), v.toLowerCase()])).toEqual([
        ['transfer-encoding', 'chunked'],
      ]);
    },
  );

  it('passes chunk extensions as body framing only (decoded, re-chunked)', async () => {
    const reply = await converse(
      edge.proxy.port,
      `POST /ext HTTP/1.1\r\n${HEAD}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n3;name=value\r\nabc\r\n0\r\n\r\n`,
    );
    expect(reply.answers.map((a) => a.status)).toEqual([200]);
    expect(edge.blue.received('/ext')[0]!.body.toString()).toBe('abc');
    expect(edge.blue.rawText()).not.toContain('name=value');
  });

  it('sends a request pipelined after a correct body as its own request', async () => {
    const reply = await converse(
      edge.proxy.port,
      `POST /first HTTP/1.1\r\n${HEAD}Content-Length: 5\r\n\r\nhello` +
        `GET /second HTTP/1.1\r\n${HEAD}Connection: close\r\n\r\n`,
      { answers: 2 },
    );
    expect(reply.answers.map((a) => [a.status, a.headers['x-togather-slot']])).toEqual([
      [200, 'blue'],
      [200, 'blue'],
    ]);
    expect(edge.blue.traffic().map((r) => [r.method, r.target, r.body.toString()])).toEqual([
      ['POST', '/first', 'hello'],
      ['GET', '/second', ''],
    ]);
  });

  it('takes a request hidden in a body that claims more than it holds as body bytes only', async () => {
    // Content-Length covers "short" and the smuggled request line; the rest is not a request.
    const body = 'shortGET /smuggled HTTP/1.1\r\n';
    const reply = await converse(
      edge.proxy.port,
      `POST /lie HTTP/1.1\r\n${HEAD}Content-Length: ${body.length}\r\n\r\n${body}${HEAD}\r\n`,
      { answers: 2 },
    );
    expect(reply.answers.map((a) => a.status)).toEqual([200, 400]);
    expectProxyError(reply.answers[1], 400, 'bad_request');
    expect(reply.closed).toBe(true);
    expect(edge.blue.traffic().map((r) => [r.method, r.target, r.body.toString()])).toEqual([
      ['POST', '/lie', body],
    ]);
    expect(edge.blue.received('/smuggled')).toEqual([]);
  });

  it.each([
    ['Content-Length', (body: string) => `Content-Length: ${body.length}\r\n\r\n${body}`],
    [
      'Transfer-Encoding: chunked',
      (body: string) =>
        `Transfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
    ],
  ])('keeps %s framing when it comes after 2000 other header lines', async (_name, framed) => {
    // Node leaves header lines past its header count limit out of req.headers.
    const smuggled = `GET /smuggled HTTP/1.1\r\n${HEAD}\r\n`;
    const reply = await converse(
      edge.proxy.port,
      `GET /front HTTP/1.1\r\n${HEAD}${'x-pad:\r\n'.repeat(2001)}Connection: close\r\n${framed(smuggled)}`,
    );
    expect(reply.answers.map((a) => a.status)).toEqual([200]);
    expect(edge.blue.traffic().map((r) => [r.method, r.target, r.body.toString()])).toEqual([
      ['GET', '/front', smuggled],
    ]);
    expect(edge.blue.received('/smuggled')).toEqual([]);
  });

  it('answers a malformed request pipelined behind a slow one only after the slow answer', async () => {
    const reply = await converse(
      edge.proxy.port,
      `GET /slow?ms=300 HTTP/1.1\r\n${HEAD}\r\nNOT A REQUEST\r\n\r\n`,
      { answers: 2 },
    );
    expect(reply.answers.map((a) => a.status)).toEqual([200, 400]);
    expect(JSON.parse(reply.answers[0]!.body)).toMatchObject({ path: '/slow?ms=300' });
    expectProxyError(reply.answers[1], 400, 'bad_request');
    expect(reply.closed).toBe(true);
  });

  it('forwards a chunked body with a smuggled request after its last chunk as two requests', async () => {
    const reply = await converse(
      edge.proxy.port,
      `POST /chunks HTTP/1.1\r\n${HEAD}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n` +
        `GET /pipelined HTTP/1.1\r\n${HEAD}Connection: close\r\n\r\n`,
      { answers: 2 },
    );
    expect(reply.answers.map((a) => a.status)).toEqual([200, 200]);
    expect(edge.blue.traffic().map((r) => [r.method, r.target, r.body.toString()])).toEqual([
      ['POST', '/chunks', 'abc'],
      ['GET', '/pipelined', ''],
    ]);
  });

  it('cuts a chunked body that never ends at REQUEST_TIMEOUT and does not reuse its slot connection', async () => {
    const client = await RawClient.connect(edge.proxy.port);
    try {
      client.write(
        `POST /unfinished HTTP/1.1\r\n${HEAD}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n`,
      );
      expect(await client.waitForClose(8000)).toBe(true);
      const answers = client.answers();
      // Node answers 408 when nothing was answered yet; either way the connection is closed.
      if (answers.length > 0) expectProxyError(answers[0], 408, 'request_timeout');
    } finally {
      client.destroy();
    }
    // The slot never saw a complete request, and the connection that carried
    // the partial one was closed rather than reused for the next client.
    expect(edge.blue.received('/unfinished')).toEqual([]);
    expect(edge.blue.rawText()).toContain('POST /unfinished');
  });
});
