import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../harness/ports.js';

const run = promisify(execFile);
const openssl = (cwd: string, args: string[]) => run('openssl', args, { cwd });

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

/** openssl's index.txt time format: YYMMDDHHMMSSZ. */
function indexTime(date: Date): string {
  return date.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';
}

/**
 * A test CA with a delegated OCSP signer, a localhost certificate whose AIA
 * names a responder on 127.0.0.1, and that responder: an HTTP listener that
 * has `openssl ocsp` (as a real responder, from the CA's index.txt) answer
 * each request. `openssl ocsp -port` would bind every interface, hence the
 * listener around it.
 */
export class OcspResponder {
  requests = 0;
  /** Answer HTTP 500 instead (a responder outage). */
  down = false;

  private constructor(
    readonly dir: string,
    private readonly server: Server,
    readonly url: string,
    /** The certificate followed by its issuer (what TLS_CERT_FILE holds). */
    readonly chainFile: string,
    readonly keyFile: string,
    readonly serial: string,
  ) {}

  static async start(): Promise<OcspResponder> {
    const dir = await mkdtemp(join(tmpdir(), 'togather-ocsp-'));
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/ocsp`;
    const caExt = [
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ];
    await openssl(dir, [
      'req',
      '-x509',
      ...EC,
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '2',
      '-subj',
      '/CN=Togather Test CA',
      ...caExt,
    ]);
    const issue = async (name: string, subject: string, ext: string, serial: string) => {
      await openssl(dir, [
        'req',
        ...EC,
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.csr`,
        '-subj',
        subject,
      ]);
      await writeFile(join(dir, `${name}.ext`), ext);
      await openssl(dir, [
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        'ca.crt',
        '-CAkey',
        'ca.key',
        '-set_serial',
        serial,
        '-days',
        '1',
        '-out',
        `${name}.crt`,
        '-extfile',
        `${name}.ext`,
      ]);
    };
    await issue(
      'leaf',
      '/CN=localhost',
      `subjectAltName=DNS:localhost\nauthorityInfoAccess=OCSP;URI:${url}\n`,
      '0x1234',
    );
    await issue('signer', '/CN=Togather Test OCSP', 'extendedKeyUsage=OCSPSigning\n', '0x99');
    // A responder key the CA never delegated to.
    await openssl(dir, [
      'req',
      '-x509',
      ...EC,
      '-keyout',
      'rogue.key',
      '-out',
      'rogue.crt',
      '-days',
      '2',
      '-subj',
      '/CN=Rogue',
    ]);
    const leaf = await readFile(join(dir, 'leaf.crt'), 'utf8');
    await writeFile(join(dir, 'chain.crt'), leaf + (await readFile(join(dir, 'ca.crt'), 'utf8')));
    const cert = new X509Certificate(leaf);
    await writeFile(
      join(dir, 'index.txt'),
      `V\t${indexTime(new Date(cert.validTo))}\t\t${cert.serialNumber}\tunknown\t/CN=localhost\n`,
    );

    const server = createServer();
    const responder = new OcspResponder(
      dir,
      server,
      url,
      join(dir, 'chain.crt'),
      join(dir, 'leaf.key'),
      cert.serialNumber,
    );
    server.on('request', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        responder.requests += 1;
        if (responder.down) {
          res.writeHead(500).end();
          return;
        }
        responder.answer(Buffer.concat(chunks)).then(
          (body) => res.writeHead(200, { 'content-type': 'application/ocsp-response' }).end(body),
          () => res.writeHead(500).end(),
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    return responder;
  }

  /** What openssl, as the responder, answers to a DER request, signed by the delegated signer, the CA itself, or a key of nobody's. */
  async answer(request: Buffer, signer: 'signer' | 'ca' | 'rogue' = 'signer'): Promise<Buffer> {
    const name = `req-${process.hrtime.bigint()}`;
    await writeFile(join(this.dir, `${name}.der`), request);
    await openssl(this.dir, [
      'ocsp',
      '-index',
      'index.txt',
      '-rsigner',
      `${signer}.crt`,
      '-rkey',
      `${signer}.key`,
      '-CA',
      'ca.crt',
      '-nmin',
      '5',
      '-reqin',
      `${name}.der`,
      '-respout',
      `${name}.resp`,
    ]);
    return readFile(join(this.dir, `${name}.resp`));
  }

  /** openssl's own request for the certificate (no nonce), to compare ours with. */
  async opensslRequest(): Promise<Buffer> {
    await openssl(this.dir, [
      'ocsp',
      '-issuer',
      'ca.crt',
      '-cert',
      'leaf.crt',
      '-no_nonce',
      '-reqout',
      'openssl-req.der',
    ]);
    return readFile(join(this.dir, 'openssl-req.der'));
  }

  /** openssl's verdict on a stapled response: "leaf.crt: good" and whether it verifies. */
  async verify(response: Buffer): Promise<string> {
    await writeFile(join(this.dir, 'stapled.der'), response);
    const { stdout, stderr } = await openssl(this.dir, [
      'ocsp',
      '-respin',
      'stapled.der',
      '-issuer',
      'ca.crt',
      '-cert',
      'leaf.crt',
      '-CAfile',
      'ca.crt',
    ]);
    return `${stdout}${stderr}`;
  }

  /** Marks the certificate revoked in the CA's index. */
  async revoke(): Promise<void> {
    const index = join(this.dir, 'index.txt');
    const line = (await readFile(index, 'utf8')).split('\t');
    line[0] = 'R';
    line[2] = indexTime(new Date());
    await writeFile(index, line.join('\t'));
  }

  async file(name: string): Promise<Buffer> {
    return readFile(join(this.dir, name));
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
    await rm(this.dir, { recursive: true, force: true });
  }
}
