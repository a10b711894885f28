import { request } from 'node:http';
import { createGunzip } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compressionCases, compressionOffCases } from '../../support/compression-cases.js';
import { twoSlotsAndEdge, type SlotsAndEdge } from '../../support/edge.js';
import { httpRequest } from '../../../harness/http-client.js';

/**
 * COMPRESSION on HTTP/1.1: the cases every protocol passes
 * (test/support/compression-cases.ts), then streaming and a slot breaking off.
 */

describe('compression on (the default)', () => {
  let t: SlotsAndEdge;

  beforeAll(async () => {
    t = await twoSlotsAndEdge({ env: { ACCESS_LOG: 'off' } });
  });

  afterAll(() => t?.close());

  compressionCases((path, options) => httpRequest(`${t.url}${path}`, options));

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

  compressionOffCases((path, options) => httpRequest(`${t.url}${path}`, options));
});
