import { request } from 'node:http';
import { brotliDecompressSync, createGunzip, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { twoSlotsAndEdge, type SlotsAndEdge } from '../../support/edge.js';
import { answerBody } from '../../support/fake-slot.js';
import { httpRequest, type HttpAnswer } from '../../../harness/http-client.js';

/** COMPRESSION: gzip and brotli of slot answers, decoded for real. */

function get(
  t: SlotsAndEdge,
  path: string,
  acceptEncoding?: string,
  extra: Record<string, string> = {},
) {
  const headers =
    acceptEncoding === undefined ? extra : { 'accept-encoding': acceptEncoding, ...extra };
  return httpRequest(`${t.url}${path}`, { headers });
}

/** The slot's body, as the client reads it once decoded. */
function decoded(answer: HttpAnswer): string {
  switch (answer.headers['content-encoding']) {
    case 'gzip':
      return gunzipSync(answer.raw).toString('utf8');
    case 'br':
      return brotliDecompressSync(answer.raw).toString('utf8');
    default:
      return answer.body;
  }
}

describe('compression on (the default)', () => {
  let t: SlotsAndEdge;

  beforeAll(async () => {
    t = await twoSlotsAndEdge({ env: { ACCESS_LOG: 'off' } });
  });

  afterAll(() => t?.close());

  it('gzips a JSON answer for a client that accepts gzip, keeping the slot headers', async () => {
    const answer = await get(t, '/answer?bytes=20000&h-x-app=kept', 'gzip');
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
    const answer = await get(t, '/answer?bytes=20000', 'gzip, deflate, br');
    expect(answer.headers['content-encoding']).toBe('br');
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
    const answer = await get(t, '/answer?bytes=5000', acceptEncoding);
    expect(answer.headers['content-encoding']).toBe(coding);
    expect(decoded(answer)).toBe(answerBody(5000).toString());
  });

  it.each([['br;q=0, gzip;q=0'], ['gzip;q=0'], ['identity'], ['deflate'], ['gzip;q=x']])(
    'Accept-Encoding %j gets the answer as it is, with Vary',
    async (acceptEncoding) => {
      const answer = await get(t, '/answer?bytes=5000', acceptEncoding);
      expect(answer.headers['content-encoding']).toBeUndefined();
      expect(answer.headers['content-length']).toBe('5000');
      expect(answer.headers.vary).toBe('Accept-Encoding');
      expect(answer.body).toBe(answerBody(5000).toString());
    },
  );

  it('sends the answer as it is, with Vary, to a client that says nothing of codings', async () => {
    const answer = await get(t, '/answer?bytes=5000');
    expect(answer.headers['content-encoding']).toBeUndefined();
    expect(answer.headers.vary).toBe('Accept-Encoding');
    expect(answer.body).toBe(answerBody(5000).toString());
  });

  it.each([
    ['Cache-Control: no-transform', '/answer?bytes=5000&h-cache-control=public,%20no-transform'],
    ['a declared body under 1 KiB', '/answer?bytes=1023'],
    ['an image', '/answer?bytes=5000&h-content-type=image/png'],
    ['server-sent events', '/answer?bytes=5000&chunked=1&h-content-type=text/event-stream'],
  ])('leaves alone, without Vary, %s', async (_name, path) => {
    const answer = await get(t, path, 'gzip, br');
    expect(answer.headers['content-encoding']).toBeUndefined();
    expect(answer.headers.vary).toBeUndefined();
    expect(answer.raw.length).toBe(Number(/bytes=(\d+)/.exec(path)![1]));
  });

  it('leaves a Range request and a 206 answer alone', async () => {
    const ranged = await get(t, '/answer?bytes=5000', 'gzip', { range: 'bytes=0-99' });
    expect(ranged.headers['content-encoding']).toBeUndefined();
    expect(ranged.raw.length).toBe(5000);
    const partial = await get(
      t,
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
      t,
      '/answer?bytes=5000&h-content-encoding=gzip&h-vary=Accept-Encoding',
      'gzip, br',
    );
    expect(own.headers['content-encoding']).toBe('gzip');
    expect(own.headers.vary).toBe('Accept-Encoding');
    // The slot's bytes, untouched (this slot only labels them gzip).
    expect(own.raw).toEqual(answerBody(5000));
    for (const status of [204, 304]) {
      const answer = await get(t, `/answer?bytes=5000&status=${status}`, 'gzip');
      expect(answer.status).toBe(status);
      expect(answer.headers['content-encoding']).toBeUndefined();
      expect(answer.raw.length).toBe(0);
    }
  });

  it('answers HEAD with the headers of the uncompressed answer and Vary', async () => {
    const answer = await httpRequest(`${t.url}/answer?bytes=5000`, {
      method: 'HEAD',
      headers: { 'accept-encoding': 'gzip' },
    });
    expect(answer.status).toBe(200);
    expect(answer.headers['content-encoding']).toBeUndefined();
    expect(answer.headers['content-length']).toBe('5000');
    expect(answer.headers.vary).toBe('Accept-Encoding');
  });

  it('compresses a chunked answer of unknown length, and a 404', async () => {
    const chunked = await get(
      t,
      '/answer?bytes=300&chunked=1&h-content-type=text/plain;%20charset=utf-8',
      'gzip',
    );
    expect(chunked.headers['content-encoding']).toBe('gzip');
    expect(decoded(chunked)).toBe(answerBody(300).toString());
    const missing = await get(
      t,
      '/answer?bytes=3000&status=404&h-content-type=application/problem%2Bjson',
      'br',
    );
    expect(missing.status).toBe(404);
    expect(missing.headers['content-encoding']).toBe('br');
    expect(decoded(missing)).toBe(answerBody(3000).toString());
  });

  it('adds to the slot Vary, weakens its ETag and drops Accept-Ranges when compressing', async () => {
    const answer = await get(
      t,
      '/answer?bytes=5000&h-vary=Origin&h-etag=%22v1%22&h-accept-ranges=bytes&h-last-modified=Wed,%2021%20Oct%202015%2007:28:00%20GMT',
      'gzip',
    );
    expect(answer.headers['content-encoding']).toBe('gzip');
    expect(answer.headers.vary).toBe('Origin, Accept-Encoding');
    expect(answer.headers.etag).toBe('W/"v1"');
    expect(answer.headers['accept-ranges']).toBeUndefined();
    expect(answer.headers['last-modified']).toBe('Wed, 21 Oct 2015 07:28:00 GMT');
    const plain = await get(t, '/answer?bytes=5000&h-vary=Origin&h-etag=%22v1%22');
    expect(plain.headers.vary).toBe('Origin, Accept-Encoding');
    expect(plain.headers.etag).toBe('"v1"');
  });

  it('streams: each chunk of the slot reaches the client before the slot sends the next', async () => {
    // The slot echoes the body as it arrives: the decoded echo of the first
    // part must come back before the second part is even sent.
    const result = await new Promise<{ encoding: string | undefined; text: string }>(
      (resolve, reject) => {
        const req = request(`${t.url}/upload?type=text/plain`, {
          method: 'POST',
          agent: false,
          headers: { 'transfer-encoding': 'chunked', 'accept-encoding': 'gzip' },
        });
        req.on('error', reject);
        req.on('response', (res) => {
          let text = '';
          const gunzip = res.pipe(createGunzip());
          gunzip.setEncoding('utf8');
          gunzip.on('data', (chunk: string) => {
            text += chunk;
            if (text === 'first part;') req.end('second part');
          });
          gunzip.on('error', reject);
          gunzip.on('end', () => resolve({ encoding: res.headers['content-encoding'], text }));
        });
        req.flushHeaders();
        req.write('first part;');
      },
    );
    expect(result).toEqual({ encoding: 'gzip', text: 'first part;second part' });
  });

  it('cuts the client answer when the slot breaks off a compressed answer', async () => {
    let encoding: string | undefined;
    const outcome = await new Promise<string>((resolve) => {
      const req = request(`${t.url}/answer?bytes=50000&chunked=1&cut=1`, {
        agent: false,
        headers: { 'accept-encoding': 'gzip' },
      });
      req.on('error', (error) => resolve(`request error: ${error.message}`));
      req.on('response', (res) => {
        encoding = res.headers['content-encoding'];
        res.on('error', () => resolve('aborted'));
        res.on('end', () => resolve(res.complete ? 'complete' : 'aborted'));
        res.resume();
      });
      req.end();
    });
    // Never a complete answer (a finished gzip stream would pass the half body off as all of it).
    expect(outcome).toBe('aborted');
    expect(encoding).toBe('gzip');
  });
});

describe('compression off', () => {
  let t: SlotsAndEdge;

  beforeAll(async () => {
    t = await twoSlotsAndEdge({ env: { ACCESS_LOG: 'off', COMPRESSION: 'off' } });
  });

  afterAll(() => t?.close());

  it('sends every answer as the slot wrote it, without Vary', async () => {
    const answer = await get(t, '/answer?bytes=20000', 'gzip, br');
    expect(answer.headers['content-encoding']).toBeUndefined();
    expect(answer.headers.vary).toBeUndefined();
    expect(answer.headers['content-length']).toBe('20000');
    expect(answer.body).toBe(answerBody(20000).toString());
  });
});
