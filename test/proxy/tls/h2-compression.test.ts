import { createGunzip } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  compressionCases,
  compressionOffCases,
  type Fetch,
} from '../../support/compression-cases.js';
import { startFakeSlots, type FakeSlot } from '../../support/fake-slot.js';
import { H2Client, H2StreamError, h2Request } from '../../support/h2-client.js';
import { startTlsProxy, type TlsProxy } from '../../support/tls-proxy.js';

/**
 * COMPRESSION on HTTP/2 streams, by the same decision and encoders as on
 * HTTP/1.1: the cases every protocol passes (test/support/compression-cases.ts)
 * with a node:http2 client against the TLS listener, then what HTTP/2 adds
 * (the access log's bytes, HSTS, streaming, a slot breaking off).
 */

/** Both slots and the TLS edge, started in beforeAll and stopped in afterAll. */
function tlsEdge(env: Record<string, string> = {}): { tls: () => TlsProxy; fetch: Fetch } {
  let slots: { blue: FakeSlot; green: FakeSlot } | undefined;
  let tls: TlsProxy | undefined;
  beforeAll(async () => {
    slots = await startFakeSlots();
    tls = await startTlsProxy({ blueUrl: slots.blue.url, greenUrl: slots.green.url }, env);
  });
  afterAll(async () => {
    await tls?.stop();
    await Promise.all([slots?.blue.close(), slots?.green.close()]);
  });
  return {
    tls: () => tls!,
    fetch: (path, options) => h2Request(tls!.tlsUrl, tls!.ca, path, options),
  };
}

describe('compression on HTTP/2 (on by default)', () => {
  const edge = tlsEdge();
  compressionCases(edge.fetch);

  it('counts the compressed bytes in the access log and keeps HSTS', async () => {
    const answer = await edge.fetch('/answer?bytes=20000', {
      headers: { 'accept-encoding': 'gzip', 'x-request-id': 'h2-gzip-1' },
    });
    expect(answer.headers['content-encoding']).toBe('gzip');
    expect(answer.headers['strict-transport-security']).toBe('max-age=31536000');
    const line = await edge
      .tls()
      .logs.waitFor((l) => l.request_id === 'h2-gzip-1' && l.msg === 'request');
    expect(line).toMatchObject({ status: 200, bytes: answer.raw.length });
  });

  it('streams: each chunk of the slot reaches the client before the slot sends the next', async () => {
    const client = await H2Client.connect(edge.tls().tlsUrl, edge.tls().ca);
    try {
      const result = await new Promise<{ encoding: unknown; text: string }>((resolve, reject) => {
        const stream = client.session.request(
          {
            ':method': 'POST',
            ':path': '/upload?type=text/plain',
            'accept-encoding': 'gzip',
          },
          { endStream: false },
        );
        stream.on('error', reject);
        stream.on('response', (headers) => {
          let text = '';
          const gunzip = stream.pipe(createGunzip());
          gunzip.setEncoding('utf8');
          gunzip.on('data', (chunk: string) => {
            text += chunk;
            // The echo of the first part came back decoded before the second is sent.
            if (text === 'first part;') stream.end('second part');
          });
          gunzip.on('error', reject);
          gunzip.on('end', () => resolve({ encoding: headers['content-encoding'], text }));
        });
        stream.write('first part;');
      });
      expect(result).toEqual({ encoding: 'gzip', text: 'first part;second part' });
    } finally {
      client.destroy();
    }
  });

  it('resets the stream when the slot breaks off a compressed answer', async () => {
    const outcome = await edge
      .fetch('/answer?bytes=50000&chunked=1&cut=1', { headers: { 'accept-encoding': 'gzip' } })
      .catch((error: unknown) => error);
    // Never a complete answer: a finished gzip stream would pass the half body off as all of it.
    expect(outcome).toBeInstanceOf(H2StreamError);
  });
});

describe('compression off on HTTP/2', () => {
  compressionOffCases(tlsEdge({ COMPRESSION: 'off' }).fetch);
});
