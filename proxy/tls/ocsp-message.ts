import { createHash, verify, X509Certificate, type KeyObject } from 'node:crypto';
import {
  children,
  contextTag,
  encode,
  expectTag,
  parseDer,
  readGeneralizedTime,
  readOid,
  TAG,
  type Element,
} from './der.js';

/** What identifies a certificate to its CA's responder (RFC 6960 CertID, SHA-1 as every responder takes). */
export interface CertId {
  issuerNameHash: Buffer;
  issuerKeyHash: Buffer;
  serial: Buffer;
}

export interface OcspAnswer {
  status: 'good' | 'revoked' | 'unknown';
  thisUpdate: Date;
  nextUpdate?: Date;
}

/** A response that must not be stapled: unreadable, unsigned by the CA, for another certificate, stale. */
export class OcspResponseRejected extends Error {
  override name = 'OcspResponseRejected';
}

const SHA1_ALGORITHM = encode(
  TAG.SEQUENCE,
  encode(TAG.OID, Buffer.from('2b0e03021a', 'hex')),
  encode(TAG.NULL),
);
const BASIC_RESPONSE = '1.3.6.1.5.5.7.48.1.1';
const OCSP_SIGNING = '1.3.6.1.5.5.7.3.9';
const RESPONSE_STATUS = [
  'successful',
  'malformedRequest',
  'internalError',
  'tryLater',
  '4',
  'sigRequired',
  'unauthorized',
];
/** Signature algorithms of responses: the hash to verify with (null: the key's own, Ed25519). */
const SIGNATURE_HASH: Readonly<Record<string, string | null>> = {
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '1.2.840.113549.1.1.5': 'sha1',
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.3.101.112': null,
};
/** Responders and servers disagree on the time by this much at most. */
const CLOCK_SKEW_MS = 5 * 60_000;

const sha1 = (data: Buffer) => createHash('sha1').update(data).digest();

/** The fields of a certificate's tbsCertificate, by name. */
function tbsFields(certificateDer: Buffer) {
  const certificate = expectTag(
    parseDer(certificateDer, 'certificate'),
    TAG.SEQUENCE,
    'certificate',
  );
  const fields = children(expectTag(children(certificate)[0], TAG.SEQUENCE, 'tbsCertificate'));
  const at = fields[0]?.tag === contextTag(0) ? 1 : 0; // the version is optional
  const spki = children(expectTag(fields[at + 5], TAG.SEQUENCE, 'subjectPublicKeyInfo'));
  return {
    serial: expectTag(fields[at], TAG.INTEGER, 'serialNumber'),
    issuer: expectTag(fields[at + 2], TAG.SEQUENCE, 'issuer'),
    subject: expectTag(fields[at + 4], TAG.SEQUENCE, 'subject'),
    publicKey: expectTag(spki[1], TAG.BIT_STRING, 'subjectPublicKey'),
  };
}

export function certIdFor(leafDer: Buffer, issuerDer: Buffer): CertId {
  const leaf = tbsFields(leafDer);
  const issuer = tbsFields(issuerDer);
  return {
    issuerNameHash: sha1(leaf.issuer.der),
    // The key's bits, without the BIT STRING's unused-bits byte.
    issuerKeyHash: sha1(issuer.publicKey.contents.subarray(1)),
    serial: leaf.serial.contents,
  };
}

/** OCSPRequest with one certificate, no extensions (no nonce: responses are cached and shared). */
export function encodeOcspRequest(id: CertId): Buffer {
  const certId = encode(
    TAG.SEQUENCE,
    SHA1_ALGORITHM,
    encode(TAG.OCTET_STRING, id.issuerNameHash),
    encode(TAG.OCTET_STRING, id.issuerKeyHash),
    encode(TAG.INTEGER, id.serial),
  );
  const request = encode(TAG.SEQUENCE, certId);
  return encode(TAG.SEQUENCE, encode(TAG.SEQUENCE, encode(TAG.SEQUENCE, request)));
}

function sameCertId(element: Element, id: CertId): boolean {
  const [algorithm, nameHash, keyHash, serial] = children(
    expectTag(element, TAG.SEQUENCE, 'certID'),
  );
  const oid = readOid(children(expectTag(algorithm, TAG.SEQUENCE, 'hashAlgorithm'))[0]!);
  return (
    oid === '1.3.14.3.2.26' &&
    expectTag(nameHash, TAG.OCTET_STRING, 'issuerNameHash').contents.equals(id.issuerNameHash) &&
    expectTag(keyHash, TAG.OCTET_STRING, 'issuerKeyHash').contents.equals(id.issuerKeyHash) &&
    expectTag(serial, TAG.INTEGER, 'serialNumber').contents.equals(id.serial)
  );
}

/** The keys that may sign: the CA's, and delegated responders it issued for OCSP signing. */
function signingKeys(issuer: X509Certificate, certs: Element | undefined, now: Date): KeyObject[] {
  const keys = [issuer.publicKey];
  const list = certs ? children(expectTag(children(certs)[0], TAG.SEQUENCE, 'certs')) : [];
  for (const element of list) {
    const candidate = new X509Certificate(element.der);
    const valid =
      Date.parse(candidate.validFrom) <= now.getTime() &&
      now.getTime() <= Date.parse(candidate.validTo);
    if (
      valid &&
      candidate.checkIssued(issuer) &&
      candidate.verify(issuer.publicKey) &&
      candidate.keyUsage?.includes(OCSP_SIGNING)
    ) {
      keys.push(candidate.publicKey);
    }
  }
  return keys;
}

/**
 * Reads a responder's answer about `id` and checks it can be stapled: a
 * successful basic response, signed by the issuer or a responder it
 * delegated, about this very certificate, current at `now`.
 */
export function readOcspResponse(
  der: Buffer,
  id: CertId,
  issuerDer: Buffer,
  now: Date,
): OcspAnswer {
  try {
    const top = children(expectTag(parseDer(der, 'OCSPResponse'), TAG.SEQUENCE, 'OCSPResponse'));
    const status = expectTag(top[0], TAG.ENUMERATED, 'responseStatus').contents[0] ?? 0xff;
    if (status !== 0) {
      throw new OcspResponseRejected(`the responder answered ${RESPONSE_STATUS[status] ?? status}`);
    }
    const bytes = children(
      expectTag(
        children(expectTag(top[1], contextTag(0), 'responseBytes'))[0],
        TAG.SEQUENCE,
        'responseBytes',
      ),
    );
    if (readOid(bytes[0]!) !== BASIC_RESPONSE)
      throw new OcspResponseRejected('not a basic OCSP response');
    const basicDer = expectTag(bytes[1], TAG.OCTET_STRING, 'response').contents;
    const [tbs, algorithm, signature, certs] = children(
      expectTag(parseDer(basicDer, 'BasicOCSPResponse'), TAG.SEQUENCE, 'BasicOCSPResponse'),
    );
    const tbsData = expectTag(tbs, TAG.SEQUENCE, 'tbsResponseData');
    const algorithmOid = readOid(
      children(expectTag(algorithm, TAG.SEQUENCE, 'signatureAlgorithm'))[0]!,
    );
    const hash = SIGNATURE_HASH[algorithmOid];
    if (hash === undefined)
      throw new OcspResponseRejected(`unsupported signature algorithm ${algorithmOid}`);
    const signatureBytes = expectTag(signature, TAG.BIT_STRING, 'signature').contents.subarray(1);
    const issuer = new X509Certificate(issuerDer);
    const signed = signingKeys(issuer, certs, now).some((key) =>
      verify(hash, tbsData.der, { key, dsaEncoding: 'der' }, signatureBytes),
    );
    if (!signed)
      throw new OcspResponseRejected('not signed by the issuer or a responder it delegated');

    const fields = children(tbsData);
    const at = fields[0]?.tag === contextTag(0) ? 1 : 0;
    const responses = children(expectTag(fields[at + 2], TAG.SEQUENCE, 'responses'));
    const single = responses
      .map((r) => children(expectTag(r, TAG.SEQUENCE, 'SingleResponse')))
      .find((r) => sameCertId(r[0]!, id));
    if (!single) throw new OcspResponseRejected('the response is about another certificate');
    const certStatus = single[1]!.tag;
    const answer: OcspAnswer = {
      status: certStatus === 0x80 ? 'good' : certStatus === contextTag(1) ? 'revoked' : 'unknown',
      thisUpdate: readGeneralizedTime(single[2]!),
    };
    const next = single[3]?.tag === contextTag(0) ? children(single[3])[0] : undefined;
    if (next) answer.nextUpdate = readGeneralizedTime(next);
    if (answer.thisUpdate.getTime() > now.getTime() + CLOCK_SKEW_MS)
      throw new OcspResponseRejected('the response is from the future');
    if (answer.nextUpdate && answer.nextUpdate.getTime() <= now.getTime())
      throw new OcspResponseRejected('the response has expired');
    return answer;
  } catch (error) {
    if (error instanceof OcspResponseRejected) throw error;
    // DerError, or a certificate in the response that X509Certificate cannot read.
    throw new OcspResponseRejected(`unreadable response: ${(error as Error).message}`);
  }
}
