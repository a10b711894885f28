import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:tls';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../common/logger.js';
import type { CertificateSource } from '../../../proxy/tls/certificate-source.js';
import { createFilePairSource } from '../../../proxy/tls/file-pair-source.js';
import {
  certIdFor,
  encodeOcspRequest,
  OcspResponseRejected,
  readOcspResponse,
  type CertId,
} from '../../../proxy/tls/ocsp-message.js';
import { OcspStapler } from '../../../proxy/tls/ocsp-stapler.js';
import { createTlsListener, type TlsListener } from '../../../proxy/tls/tls-listener.js';
import { TlsMetrics } from '../../../proxy/tls/tls-metrics.js';
import { eventually } from '../../support/acme-fixture.js';
import { OcspResponder } from '../../support/ocsp-responder.js';
import { LogCapture } from '../../support/edge.js';

/** What a client asking for OCSP (status_request) gets stapled; undefined: nothing. */
function stapledTo(port: number, ca: string): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    let stapled: Buffer | undefined;
    const socket = connect(
      { host: '127.0.0.1', port, servername: 'localhost', ca, requestOCSP: true },
      () => {
        socket.destroy();
        resolve(stapled);
      },
    );
    // Emitted with null when the server staples nothing.
    socket.on('OCSPResponse', (response: Buffer | null) => (stapled = response ?? undefined));
    socket.on('error', reject);
  });
}

describe('OCSP stapling against openssl as the responder', () => {
  let responder: OcspResponder;
  let leaf: Buffer;
  let issuer: Buffer;
  let id: CertId;
  let ca: string;

  beforeAll(async () => {
    responder = await OcspResponder.start();
    leaf = new X509Certificate(await responder.file('leaf.crt')).raw;
    issuer = new X509Certificate(await responder.file('ca.crt')).raw;
    ca = (await responder.file('ca.crt')).toString('utf8');
    id = certIdFor(leaf, issuer);
  });

  afterAll(() => responder?.stop());

  it('builds the request openssl builds, byte for byte', async () => {
    expect(encodeOcspRequest(id).toString('hex')).toBe(
      (await responder.opensslRequest()).toString('hex'),
    );
  });

  it('reads a good answer signed by the CA or its delegated responder, and refuses what must not be stapled', async () => {
    const good = await responder.answer(encodeOcspRequest(id));
    const answer = readOcspResponse(good, id, issuer, new Date());
    expect(answer.status).toBe('good');
    expect(answer.nextUpdate!.getTime() - answer.thisUpdate.getTime()).toBe(5 * 60_000);

    const byCa = await responder.answer(encodeOcspRequest(id), 'ca');
    expect(readOcspResponse(byCa, id, issuer, new Date()).status).toBe('good');

    const rogue = await responder.answer(encodeOcspRequest(id), 'rogue');
    expect(() => readOcspResponse(rogue, id, issuer, new Date())).toThrow(
      new OcspResponseRejected('not signed by the issuer or a responder it delegated'),
    );
    const other: CertId = { ...id, serial: Buffer.from([0x43, 0x21]) };
    expect(() => readOcspResponse(good, other, issuer, new Date())).toThrow(
      'the response is about another certificate',
    );
    expect(() => readOcspResponse(good, id, issuer, new Date(Date.now() + 10 * 60_000))).toThrow(
      'the response has expired',
    );
    expect(() =>
      readOcspResponse(good.subarray(0, good.length - 3), id, issuer, new Date()),
    ).toThrow(/^unreadable response: /);
    // An error status has no responseBytes (openssl's responder gives up on a bad request
    // instead of answering malformedRequest, so this one is written out: SEQUENCE { ENUMERATED 1 }).
    const malformed = Buffer.from('30030a0101', 'hex');
    expect(() => readOcspResponse(malformed, id, issuer, new Date())).toThrow(
      'the responder answered malformedRequest',
    );
  });

  describe('on the TLS listener', () => {
    let source: CertificateSource;
    let stapler: OcspStapler;
    let listener: TlsListener;
    let port: number;
    const logs = new LogCapture();

    beforeAll(async () => {
      const logger = createLogger({ level: 'info', destination: logs.stream });
      source = await createFilePairSource({
        certFile: responder.chainFile,
        keyFile: responder.keyFile,
        logger,
        metrics: new TlsMetrics(new Registry()),
      });
      stapler = new OcspStapler({
        source,
        logger,
        maxAgeMs: 300,
        retry: { firstMs: 200, maxMs: 400 },
      });
      listener = createTlsListener({
        source,
        host: '127.0.0.1',
        port: 0,
        logger,
        ocsp: stapler,
        onRequest: (_req, res) => res.end('ok'),
      });
      port = (await listener.listen()).port;
    });

    afterAll(async () => {
      stapler?.close();
      await listener?.close(1000);
      await source?.close();
    });

    it('staples a response openssl verifies as good, fetched in the background and refreshed', async () => {
      const stapled = await eventually(() => stapledTo(port, ca), 'a stapled response');
      const verdict = await responder.verify(stapled);
      expect(verdict).toContain('Response verify OK');
      expect(verdict).toContain('leaf.crt: good');
      const before = responder.requests;
      await eventually(
        () => (responder.requests >= before + 2 ? true : undefined),
        'two refreshes',
      );
    });

    it('keeps the last good response through a responder outage', async () => {
      responder.down = true;
      await logs.waitFor(
        (l) =>
          l.msg === 'OCSP response not refreshed' && l.err === 'the responder answered HTTP 500',
      );
      const stapled = await stapledTo(port, ca);
      expect(stapled).toBeDefined();
      expect(await responder.verify(stapled!)).toContain('leaf.crt: good');
      expect(stapler.stapled(source.defaultCertificate()!)?.status).toBe('good');
      responder.down = false;
    });

    it('stops stapling once the responder says revoked', async () => {
      await responder.revoke();
      await logs.waitFor(
        (l) =>
          l.msg === 'OCSP responder says the certificate is not good; not stapling' &&
          l.ocsp_status === 'revoked',
      );
      expect(await stapledTo(port, ca)).toBeUndefined();
      expect(stapler.stapled(source.defaultCertificate()!)).toBeUndefined();
    });
  });

  it('leaves certificates without a responder URL or issuer in the chain alone', async () => {
    const logger = createLogger({ level: 'silent' });
    // The leaf alone (no issuer in the file): nothing to ask.
    const { writeFile } = await import('node:fs/promises');
    const alone = `${responder.dir}/alone.crt`;
    await writeFile(alone, await readFile(`${responder.dir}/leaf.crt`));
    const source = await createFilePairSource({
      certFile: alone,
      keyFile: responder.keyFile,
      logger,
      metrics: new TlsMetrics(new Registry()),
    });
    const before = responder.requests;
    const stapler = new OcspStapler({ source, logger });
    await new Promise((r) => setTimeout(r, 300));
    expect(responder.requests).toBe(before);
    expect(stapler.stapled(source.defaultCertificate()!)).toBeUndefined();
    stapler.close();
    await source.close();
  });
});
