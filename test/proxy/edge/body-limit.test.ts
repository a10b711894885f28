import { request, type IncomingHttpHeaders } from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { twoSlotsAndEdge, type SlotsAndEdge } from '../../support/edge.js';
import { RawClient } from '../../support/raw-client.js';
import { httpRequest } from '../../../harness/http-client.js';

/**
 * MAX_BODY_SIZE: 413 for a declared body over the limit before the slot sees
 * anything; a chunked body cut as it crosses the limit, the slot's request
 * aborted on a connection that is not reused.
 */

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A chunked POST: `first`, then (once `between` resolves) `second`; ends after the answer. */
function chunkedPost(
  url: string,
  first: string,
  between: () => Promise<void>,
  second: string,
  requestId: string,
): Promise<Answer | string> {
  return new Promise((resolve) => {
    const req = request(url, {
      method: 'POST',
      agent: false,
      headers: {
        'transfer-encoding': 'chunked',
        'content-type': 'text/plain',
        'x-request-id': requestId,
      },
    });
    req.on('error', (error) => resolve(`request error: ${error.message}`));
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('error', () => resolve('aborted'));
      res.on('end', () => {
        if (!res.complete) {
          resolve('aborted');
          return;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        req.end();
      });
    });
    req.write(first);
    void between().then(() => {
      if (!req.destroyed) req.write(second);
    });
  });
}

describe('MAX_BODY_SIZE=1kb', () => {
  /** Blue proves what bytes reached it (raw wire); green streams /upload back. */
  let t: SlotsAndEdge;

  beforeAll(async () => {
    t = await twoSlotsAndEdge({
      blue: { wire: 'raw' },
      env: { MAX_BODY_SIZE: '1kb', ACCESS_LOG: 'off' },
    });
  });

  afterAll(() => t?.close());

  it('answers a declared body over the limit with 413 before anything reaches the slot', async () => {
    const answer = await httpRequest(`${t.url}/declared`, {
      method: 'POST',
      body: 'x'.repeat(1025),
      headers: { 'x-request-id': 'big-1' },
    });
    expect(answer.status).toBe(413);
    expect(answer.headers['x-togather-slot']).toBe('blue');
    expect(answer.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(answer.headers.connection).toBe('close');
    expect(answer.headers['x-content-type-options']).toBe('nosniff');
    expect(JSON.parse(answer.body)).toEqual({
      error: 'payload_too_large',
      slot: 'blue',
      request_id: 'big-1',
    });
    expect(t.blue.rawText()).not.toContain('/declared');
    expect(await t.metrics()).toMatch(
      /togather_proxy_requests_total\{slot="blue",method="POST",code="413"\} [1-9]/,
    );
  });

  it('forwards a body of exactly the limit', async () => {
    const answer = await httpRequest(`${t.url}/exact`, { method: 'POST', body: 'y'.repeat(1024) });
    expect(answer.status).toBe(200);
    const [received] = t.blue.received('/exact');
    expect(received?.body.length).toBe(1024);
  });

  it('refuses Expect: 100-continue with a body over the limit without asking for the body', async () => {
    const client = await RawClient.connect(t.port);
    try {
      client.write(
        'POST /expecting HTTP/1.1\r\nHost: edge.test\r\nX-Request-Id: exp-413\r\n' +
          'Expect: 100-continue\r\nContent-Length: 5000\r\n\r\n',
      );
      const [answer] = await client.waitForAnswers(1);
      expect(answer?.status).toBe(413);
      expect(JSON.parse(answer!.body)).toEqual({
        error: 'payload_too_large',
        slot: 'blue',
        request_id: 'exp-413',
      });
      expect(client.received).not.toContain('100 Continue');
    } finally {
      client.destroy();
    }
    expect(t.blue.rawText()).not.toContain('/expecting');
  });

  it('still sends 100 Continue for a body within the limit', async () => {
    const client = await RawClient.connect(t.port);
    try {
      client.write(
        'POST /continued HTTP/1.1\r\nHost: edge.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n',
      );
      await vi.waitFor(() => expect(client.received).toContain('HTTP/1.1 100 Continue'));
      client.write('hello');
      const answers = await client.waitForAnswers(2);
      expect(answers.map((a) => a.status)).toEqual([100, 200]);
    } finally {
      client.destroy();
    }
    expect(t.blue.received('/continued')[0]?.body.toString()).toBe('hello');
  });

  it('cuts a chunked body that grows past the limit: 413, the slot request aborted, its connection not reused', async () => {
    const answer = await chunkedPost(
      `${t.url}/chunked`,
      'a'.repeat(600),
      () => vi.waitFor(() => expect(t.blue.rawText()).toContain('a'.repeat(600))),
      'b'.repeat(600),
      'chunk-413',
    );
    expect(answer).toMatchObject({ status: 413, headers: { connection: 'close' } });
    expect(JSON.parse((answer as Answer).body)).toEqual({
      error: 'payload_too_large',
      slot: 'blue',
      request_id: 'chunk-413',
    });
    // The slot saw the head and the part within the limit, never an end, nor the part past it.
    const aborted = t.blue.connections().find((c) => c.text.includes('POST /chunked'));
    expect(aborted).toBeDefined();
    expect(aborted!.text).not.toContain('bbbb');
    await vi.waitFor(() =>
      expect(t.blue.connections().find((c) => c.id === aborted!.id)?.open).toBe(false),
    );
    expect(t.blue.received('/chunked')).toEqual([]);
    // The next request is served on another connection; nothing unreadable reached the slot.
    const next = await httpRequest(`${t.url}/after-chunked`);
    expect(next.status).toBe(200);
    const [after] = t.blue.received('/after-chunked');
    expect(after?.connection).not.toBe(aborted!.id);
    expect(t.blue.unreadable).toEqual([]);
  });

  it('refuses a chunked body whose first chunk is already past the limit; the slot sees no request', async () => {
    const answer = await chunkedPost(
      `${t.url}/chunked-at-once`,
      'c'.repeat(2000),
      () => Promise.resolve(),
      '',
      'chunk-once',
    );
    expect(answer).toMatchObject({ status: 413 });
    expect(t.blue.received('/chunked-at-once')).toEqual([]);
    expect(t.blue.rawText()).not.toContain('ccc');
    expect(t.blue.unreadable).toEqual([]);
  });

  it('closes the client connection when the body crosses the limit after the answer started', async () => {
    await t.switchTo('green');
    try {
      const abortedBefore = t.green.aborted;
      let echoed = '';
      const outcome = await new Promise<string>((resolve) => {
        const req = request(`${t.url}/upload`, {
          method: 'POST',
          agent: false,
          headers: { 'transfer-encoding': 'chunked' },
        });
        req.on('error', () => resolve('request error'));
        req.on('response', (res) => {
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            echoed += chunk;
            if (echoed === 'd'.repeat(600)) req.write('e'.repeat(600));
          });
          res.on('error', () => resolve('aborted'));
          res.on('end', () => resolve(res.complete ? 'complete' : 'aborted'));
        });
        req.write('d'.repeat(600));
      });
      expect(outcome).toBe('aborted');
      expect(echoed).toBe('d'.repeat(600));
      await vi.waitFor(() => expect(t.green.aborted).toBeGreaterThan(abortedBefore));
      const next = await httpRequest(`${t.url}/echo/after-cut`);
      expect(next.status).toBe(200);
      expect(await t.metrics()).toMatch(
        /togather_proxy_requests_total\{slot="green",method="POST",code="413"\} 1\n/,
      );
    } finally {
      await t.switchTo('blue');
    }
  });
});

describe('MAX_BODY_SIZE=0 (no limit)', () => {
  let t: SlotsAndEdge;

  beforeAll(async () => {
    t = await twoSlotsAndEdge({ env: { MAX_BODY_SIZE: '0', ACCESS_LOG: 'off' } });
  });

  afterAll(() => t?.close());

  it('forwards declared and chunked bodies of any size', async () => {
    const body = 'z'.repeat(200_000);
    const declared = await httpRequest(`${t.url}/echo/declared`, { method: 'POST', body });
    expect(JSON.parse(declared.body).body).toBe(body);
    const chunked = await httpRequest(`${t.url}/echo/chunked`, {
      method: 'POST',
      body,
      headers: { 'transfer-encoding': 'chunked' },
    });
    expect(JSON.parse(chunked.body).body).toBe(body);
  });
});

describe('MAX_BODY_SIZE default (10mb)', () => {
  let t: SlotsAndEdge;

  beforeAll(async () => {
    t = await twoSlotsAndEdge({ env: { ACCESS_LOG: 'off' } });
  });

  afterAll(() => t?.close());

  it('refuses a declared 10 MiB + 1 byte and forwards 1 MiB', async () => {
    const client = await RawClient.connect(t.port);
    try {
      client.write(
        `POST /echo/huge HTTP/1.1\r\nHost: edge.test\r\nContent-Length: ${10 * 1024 * 1024 + 1}\r\n\r\n`,
      );
      const [answer] = await client.waitForAnswers(1);
      expect(answer?.status).toBe(413);
    } finally {
      client.destroy();
    }
    expect(t.blue.requests.some((r) => r.target === '/echo/huge')).toBe(false);
    const body = 'm'.repeat(1024 * 1024);
    const ok = await httpRequest(`${t.url}/echo/mib`, { method: 'POST', body });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body).body.length).toBe(body.length);
  });
});
