import { execFile, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { get } from 'node:https';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { freePorts, waitForPort } from '../../harness/ports.js';

import { WatchedProcess } from '../../harness/child-process.js';

const run = promisify(execFile);

function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Why the ACME tests are skipped, or undefined when pebble is installed. */
export const PEBBLE_MISSING =
  onPath('pebble') && onPath('pebble-challtestsrv')
    ? undefined
    : 'pebble and pebble-challtestsrv are not installed (Debian package "pebble")';

export interface SelfSignedOptions {
  /** subjectAltName entries (default `DNS:localhost,IP:127.0.0.1`). */
  altNames?: string;
  /** Default P-256. */
  keyType?: 'ec' | 'rsa';
}

/** A self-signed certificate (`<dir>/<name>.crt` + `.key`), made with openssl. */
export async function selfSigned(
  dir: string,
  name: string,
  options: SelfSignedOptions = {},
): Promise<{ certFile: string; keyFile: string }> {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  const key =
    options.keyType === 'rsa'
      ? ['-newkey', 'rsa:2048']
      : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  await run('openssl', [
    'req',
    '-x509',
    ...key,
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    '2',
    '-subj',
    `/CN=${name.replace(/[^\w.*-]/g, '')}`,
    '-addext',
    `subjectAltName=${options.altNames ?? 'DNS:localhost,IP:127.0.0.1'}`,
  ]);
  return { certFile, keyFile };
}

export interface PebbleOptions {
  /** Where pebble sends HTTP-01 validations (a listener on 127.0.0.1). */
  httpPort: number;
  /** Lifetime of issued certificates (pebble's default is 5 years). */
  validitySeconds?: number;
}

/**
 * Debian's pebble (a test ACME CA) on loopback ports with its own
 * self-signed TLS certificate, and pebble-challtestsrv as its DNS server
 * answering 127.0.0.1 for every name, so HTTP-01 validations of any domain
 * reach `httpPort` on this machine.
 */
export class TestPebble {
  private constructor(
    private readonly dir: string,
    private readonly processes: WatchedProcess[],
    readonly acmePort: number,
    readonly managementPort: number,
    /** pebble's own TLS certificate: what ACME_CA_FILE must trust. */
    readonly caFile: string,
  ) {}

  static async start(options: PebbleOptions): Promise<TestPebble> {
    const dir = await mkdtemp(join(tmpdir(), 'togather-pebble-'));
    const [acmePort, managementPort, dnsPort, challManagementPort, tlsPort] = await freePorts(5);
    const { certFile, keyFile } = await selfSigned(dir, 'pebble');
    const config = {
      pebble: {
        listenAddress: `127.0.0.1:${acmePort}`,
        managementListenAddress: `127.0.0.1:${managementPort}`,
        certificate: certFile,
        privateKey: keyFile,
        httpPort: options.httpPort,
        tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
        ...(options.validitySeconds ? { certificateValidityPeriod: options.validitySeconds } : {}),
      },
    };
    await writeFile(join(dir, 'pebble-config.json'), JSON.stringify(config));
    const processes: WatchedProcess[] = [];
    const pebble = new TestPebble(dir, processes, acmePort!, managementPort!, certFile);
    try {
      const dns = new WatchedProcess(
        'pebble-challtestsrv',
        spawn(
          'pebble-challtestsrv',
          [
            '-defaultIPv4',
            '127.0.0.1',
            '-defaultIPv6',
            '',
            '-http01',
            '',
            '-https01',
            '',
            '-tlsalpn01',
            '',
            '-dns01',
            `127.0.0.1:${dnsPort}`,
            '-management',
            `127.0.0.1:${challManagementPort}`,
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        ),
      );
      processes.push(dns);
      await waitForPort(dnsPort!);
      const ca = new WatchedProcess(
        'pebble',
        spawn(
          'pebble',
          ['-config', join(dir, 'pebble-config.json'), '-dnsserver', `127.0.0.1:${dnsPort}`],
          {
            stdio: ['ignore', 'pipe', 'pipe'],
            env: {
              ...process.env,
              PEBBLE_VA_NOSLEEP: '1',
              PEBBLE_WFE_NONCEREJECT: '0',
              // Every order proves its names again: challenges are what the tests look at.
              PEBBLE_AUTHZREUSE: '0',
            },
          },
        ),
      );
      processes.push(ca);
      await ca.waitFor(/ACME directory available/);
      await waitForPort(acmePort!);
    } catch (error) {
      await pebble.stop();
      throw error;
    }
    return pebble;
  }

  get directoryUrl(): string {
    return `https://127.0.0.1:${this.acmePort}/dir`;
  }

  /** pebble's output so far (for failure messages). */
  get output(): string {
    return this.processes.map((p) => p.stdout + p.stderr).join('\n');
  }

  /** The root that signs what pebble issues (new at every pebble start). */
  async rootPem(): Promise<string> {
    const ca = await readFile(this.caFile, 'utf8');
    return new Promise((resolve, reject) => {
      const request = get(
        { host: '127.0.0.1', port: this.managementPort, path: '/roots/0', ca },
        (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
          res.on('end', () =>
            res.statusCode === 200
              ? resolve(body)
              : reject(new Error(`roots/0: ${res.statusCode}`)),
          );
        },
      );
      request.on('error', reject);
    });
  }

  async stop(): Promise<void> {
    for (const running of this.processes.splice(0).reverse()) await running.stop('SIGTERM');
    await rm(this.dir, { recursive: true, force: true });
  }
}
