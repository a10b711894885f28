import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { expect, it } from 'vitest';
import { answerBody } from './fake-slot.js';

/**
 * The COMPRESSION cases every protocol of the public listeners must pass
 * (HTTP/1.1: test/proxy/edge/compression.test.ts, HTTP/2:
 * test/proxy/tls/h2-compression.test.ts), written once against a client
 * function, with bodies decoded for real.
 */

/** An answer as either protocol's test client returns it. */
export interface CodedAnswer {
  status: number;
  headers: Record<string, unknown>;
  body: string;
  /** The body's bytes as received (still compressed, when the answer is). */
  raw: Buffer;
}

/** One request to the proxy (GET unless said) through the protocol under test. */
export type Fetch = (
  path: string,
  options?: { method?: string; headers?: Record<string, string> },
) => Promise<CodedAnswer>;

/** The slot's body, as the client reads it once decoded. */
export function decoded(answer: CodedAnswer): string {
  switch (answer.headers['content-encoding']) {
    case 'gzip':
      return gunzipSync(answer.raw).toString('utf8');
    case 'br':
      return brotliDecompressSync(answer.raw).toString('utf8');
    default:
      return answer.body;
  }
}

/** Registers the shared cases (inside a describe whose beforeAll makes `fetch` work). */
export function compressionCases(fetch: Fetch): void {
  const get = (path: string, acceptEncoding?: string, extra: Record<string, string> = {}) =>
    fetch(path, {
      headers:
        acceptEncoding === undefined ? extra : { 'accept-encoding': acceptEncoding, ...extra },
    });

  it('gzips a JSON answer for a client that accepts gzip, keeping the slot headers', async () => {
    const answer = await get('/answer?bytes=20000&h-x-app=kept', 'gzip');
    expect(answer.status).toBe(200);
    expect(answer.headers['content-encoding']).toBe('gzip');
    expect(answer.headers.vary).toBe('Accept-Encoding');
    expect(answer.headers['content-length']).toBeUndefined();
    expect(answer.headers['x-togather-slot']).toBe('blue');
    expect(answer.headers['x-app']).toBe('kept');
    expect(answer.headers['content-type']).toBe('application/json');
    expect(answer.raw.length).toBeLessThan(20000 / 5);
    expect(decoded(answer)).toBe(answerBody(20000).toString());
  });

  it('prefers brotli when both are accepted alike', async () => {
    const answer = await get('/answer?bytes=20000', 'gzip, deflate, br');
    expect(answer.headers['content-encoding']).toBe('br');
    expect(answer.headers['content-length']).toBeUndefined();
    expect(decoded(answer)).toBe(answerBody(20000).toString());
  });

  it.each([
    ['br;q=0.5, gzip;q=0.8', 'gzip'],
    ['gzip;q=0.2, br', 'br'],
    ['*', 'br'],
    ['br;q=0, *;q=0.3', 'gzip'],
    ['x-gzip', 'gzip'],
    ['GZIP', 'gzip'],
  ])('Accept-Encoding %j gets %s', async (acceptEncoding, coding) => {
    const answer = await get('/answer?bytes=5000', acceptEncoding);
    expect(answer.headers['content-encoding']).toBe(coding);
    expect(decoded(answer)).toBe(answerBody(5000).toString());
  });

  it.each([['br;q=0, gzip;q=0'], ['gzip;q=0'], ['identity'], ['deflate'], ['gzip;q=x']])(
    'Accept-Encoding %j gets the answer as it is, with Vary',
    async (acceptEncoding) => {
      const answer = await get('/answer?bytes=5000', acceptEncoding);
      expect(answer.headers['content-encoding']).toBeUndefined();
      expect(answer.headers['content-length']).toBe('5000');
      expect(answer.headers.vary).toBe('Accept-Encoding');
      expect(answer.body).toBe(answerBody(5000).toString());
    },
  );

  it('sends the answer as it is, with Vary, to a client that says nothing of codings', async () => {
    const answer = await get('/answer?bytes=5000');
    expect(answer.headers['content-encoding']).toBeUndefined();
    expect(answer.headers['content-length']).toBe('5000');
    expect(answer.headers.vary).toBe('Accept-Encoding');
    expect(answer.body).toBe(answerBody(5000).toString());
  });

  it.each([
    ['Cache-Control: no-transform', '/answer?bytes=5000&h-cache-control=public,%20no-transform'],
    ['a declared body under 1 KiB', '/answer?bytes=1023'],
    ['an image', '/answer?bytes=5000&h-content-type=image/png'],
    ['server-sent events', '/answer?bytes=5000&chunked=1&h-content-type=text/event-stream'],
  ])('leaves alone, without Vary, %s', async (_name, path) => {
    const answer = await get(path, 'gzip, br');
    expect(answer.headers['content-encoding']).toBeUndefined();
    expect(answer.headers.vary).toBeUndefined();
    expect(answer.raw.length).toBe(Number(/bytes=(\d+)/.exec(path)![1]));
  });

  it('leaves a Range request and a 206 answer alone', async () => {
    const ranged = await get('/answer?bytes=5000', 'gzip', { range: 'bytes=0-99' });
    expect(ranged.headers['content-encoding']).toBeUndefined();
    expect(ranged.raw.length).toBe(5000);
    const partial = await get(
      '/answer?bytes=2000&status=206&h-content-range=bytes%200-1999/9000',
      'gzip',
    );
    expect(partial.status).toBe(206);
    expect(partial.headers['content-encoding']).toBeUndefined();
    expect(partial.headers['content-range']).toBe('bytes 0-1999/9000');
    expect(partial.raw.length).toBe(2000);
  });

  it('does not compress an answer the slot compressed, nor answers without a body', async () => {
    const own = await get(
      '/answer?bytes=5000&h-content-encoding=gzip&h-vary=Accept-Encoding',
      'gzip, br',
    );
    expect(own.headers['content-encoding']).toBe('gzip');
    expect(own.headers.vary).toBe('Accept-Encoding');
    expect(own.headers['content-length']).toBe('5000');
    // The slot's bytes, untouched (this slot only labels them gzip).
    expect(own.raw).toEqual(answerBody(5000));
    for (const status of [204, 304]) {
      const answer = await get(`/answer?bytes=5000&status=${status}`, 'gzip');
      expect(answer.status).toBe(status);
      expect(answer.headers['content-encoding']).toBeUndefined();
      expect(answer.raw.length).toBe(0);
    }
  });

  it('answers HEAD with the headers of the uncompressed answer and Vary', async () => {
    const answer = await fetch('/answer?bytes=5000', {
      method: 'HEAD',
      headers: { 'accept-encoding': 'gzip' },
    });
    expect(answer.status).toBe(200);
    expect(answer.headers['content-encoding']).toBeUndefined();
    expect(answer.headers['content-length']).toBe('5000');
    expect(answer.headers.vary).toBe('Accept-Encoding');
    expect(answer.raw.length).toBe(0);
  });

  it('compresses a chunked answer of unknown length, and a 404', async () => {
    const chunked = await get(
      '/answer?bytes=300&chunked=1&h-content-type=text/plain;%20charset=utf-8',
      'gzip',
    );
    expect(chunked.headers['content-encoding']).toBe('gzip');
    expect(decoded(chunked)).toBe(answerBody(300).toString());
    const missing = await get(
      '/answer?bytes=3000&status=404&h-content-type=application/problem%2Bjson',
      'br',
    );
    expect(missing.status).toBe(404);
    expect(missing.headers['content-encoding']).toBe('br');
    expect(decoded(missing)).toBe(answerBody(3000).toString());
  });

  it('adds to the slot Vary, weakens its ETag and drops Accept-Ranges when compressing', async () => {
    const answer = await get(
      '/answer?bytes=5000&h-vary=Origin&h-etag=%22v1%22&h-accept-ranges=bytes&h-last-modified=Wed,%2021%20Oct%202015%2007:28:00%20GMT',
      'gzip',
    );
    expect(answer.headers['content-encoding']).toBe('gzip');
    expect(answer.headers.vary).toBe('Origin, Accept-Encoding');
    expect(answer.headers.etag).toBe('W/"v1"');
    expect(answer.headers['accept-ranges']).toBeUndefined();
    expect(answer.headers['last-modified']).toBe('Wed, 21 Oct 2015 07:28:00 GMT');
    const plain = await get('/answer?bytes=5000&h-vary=Origin&h-etag=%22v1%22');
    expect(plain.headers.vary).toBe('Origin, Accept-Encoding');
    expect(plain.headers.etag).toBe('"v1"');
    // A Vary that already names Accept-Encoding is kept as the slot wrote it.
    const already = await get('/answer?bytes=5000&h-vary=accept-encoding', 'br');
    expect(already.headers.vary).toBe('accept-encoding');
  });
}

/** The case of compression off, for either protocol. */
export function compressionOffCases(fetch: Fetch): void {
  it('sends every answer as the slot wrote it, without Vary', async () => {
    const answer = await fetch('/answer?bytes=20000', {
      headers: { 'accept-encoding': 'gzip, br' },
    });
    expect(answer.headers['content-encoding']).toBeUndefined();
    expect(answer.headers.vary).toBeUndefined();
    expect(answer.headers['content-length']).toBe('20000');
    expect(answer.body).toBe(answerBody(20000).toString());
  });
}
