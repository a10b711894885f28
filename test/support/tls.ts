import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A throwaway certificate authority and a server certificate it signed, as PEM files. */
export interface TestCertificates {
  dir: string;
  /** The CA certificate (what UPSTREAM_CA_FILE points at). */
  caFile: string;
  /** The server's certificate (for 127.0.0.1 and localhost) and key, as PEM text. */
  cert: string;
  key: string;
  /** A certificate of the same CA for another name only (other.example), and its key. */
  otherName: { cert: string; key: string };
  remove(): Promise<void>;
}

/**
 * Makes a CA and two server certificates it signed (one for IP 127.0.0.1 and
 * DNS localhost, one for other.example) with the openssl CLI, in a temp dir
 * (P-256 keys: fast to generate).
 */
export async function createTestCertificates(): Promise<TestCertificates> {
  const dir = await mkdtemp(join(tmpdir(), 'togather-tls-'));
  const file = (name: string) => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  try {
    await run('openssl', [
      'req',
      '-x509',
      ...ec,
      '-keyout',
      file('ca.key'),
      '-out',
      file('ca.crt'),
      '-days',
      '2',
      '-subj',
      '/CN=togather test CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    const issue = async (name: string, altNames: string) => {
      await run('openssl', [
        'req',
        ...ec,
        '-keyout',
        file(`${name}.key`),
        '-out',
        file(`${name}.csr`),
        '-subj',
        `/CN=${name}`,
      ]);
      await writeFile(
        file(`${name}.ext`),
        `subjectAltName=${altNames}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`,
      );
      await run('openssl', [
        'x509',
        '-req',
        '-in',
        file(`${name}.csr`),
        '-CA',
        file('ca.crt'),
        '-CAkey',
        file('ca.key'),
        '-CAcreateserial',
        '-days',
        '2',
        '-extfile',
        file(`${name}.ext`),
        '-out',
        file(`${name}.crt`),
      ]);
      return {
        cert: await readFile(file(`${name}.crt`), 'utf8'),
        key: await readFile(file(`${name}.key`), 'utf8'),
      };
    };
    const server = await issue('server', 'IP:127.0.0.1,DNS:localhost');
    const otherName = await issue('other', 'DNS:other.example');
    return {
      dir,
      caFile: file('ca.crt'),
      cert: server.cert,
      key: server.key,
      otherName,
      remove: () => rm(dir, { recursive: true, force: true }),
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
