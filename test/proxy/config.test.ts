import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../common/config.js';
import { loadProxyConfig } from '../../proxy/config.js';
import { createTestCertificates, type TestCertificates } from '../support/tls.js';

const KEY = 'k'.repeat(32);

function problems(env: Record<string, string>): readonly string[] {
  try {
    loadProxyConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('proxy configuration', () => {
  it('applies the documented defaults', () => {
    const config = loadProxyConfig({ ADMIN_API_KEY: KEY });
    expect(config).toMatchObject({
      PROXY_HOST: '0.0.0.0',
      PROXY_PORT: 80,
      ADMIN_HOST: '127.0.0.1',
      ADMIN_PORT: 9080,
      BLUE_URL: 'http://togather-server-blue:8080',
      GREEN_URL: 'http://togather-server-green:8080',
      STATE_FILE: './.togather/proxy-state.json',
      REDIS_KEY_PREFIX: 'togather:',
      DEFAULT_SLOT: 'blue',
      HEALTH_PATH: '/health',
      DRAIN_TIMEOUT: 30_000,
      TRUST_PROXY: false,
      ACCESS_LOG: true,
    });
    expect(config.REDIS_URL).toBeUndefined();
  });

  it('reads durations in every documented form', () => {
    const config = loadProxyConfig({
      ADMIN_API_KEY: KEY,
      DRAIN_TIMEOUT: '500ms',
      UPSTREAM_TIMEOUT: '2m',
      SHUTDOWN_TIMEOUT: '1500',
    });
    expect([config.DRAIN_TIMEOUT, config.UPSTREAM_TIMEOUT, config.SHUTDOWN_TIMEOUT]).toEqual([
      500, 120_000, 1500,
    ]);
  });

  it('lists every bad variable at once, cross-field checks included', () => {
    expect(
      problems({
        ADMIN_HOST: '0.0.0.0',
        PROXY_PORT: 'eighty',
        DEFAULT_SLOT: 'red',
        DRAIN_TIMEOUT: 'soon',
        BLUE_URL: 'ftp://x',
        REDIS_URL: 'http://redis',
      }),
    ).toEqual([
      'PROXY_PORT: must be a port number (0-65535)',
      'ADMIN_API_KEY: is required (the admin API key, at least 32 characters)',
      'BLUE_URL: must be an http(s) URL',
      'REDIS_URL: must be a redis:// or rediss:// URL',
      'DEFAULT_SLOT: Invalid option: expected one of "blue"|"green"',
      'DRAIN_TIMEOUT: "soon" is not a duration (use 500ms, 30s, 2m or plain milliseconds)',
      'ADMIN_HOST: 0.0.0.0 is not a loopback address; set ADMIN_ALLOW_REMOTE=on to expose the admin API',
    ]);
  });

  it('refuses a short admin key', () => {
    expect(problems({ ADMIN_API_KEY: 'short' })).toEqual([
      'ADMIN_API_KEY: must be at least 32 characters',
    ]);
  });

  it('accepts an off-loopback admin host only when asked for explicitly', () => {
    const config = loadProxyConfig({
      ADMIN_API_KEY: KEY,
      ADMIN_HOST: '0.0.0.0',
      ADMIN_ALLOW_REMOTE: 'on',
    });
    expect(config.ADMIN_HOST).toBe('0.0.0.0');
  });

  it('PROXY_WORKERS: 1 by default, a number, or auto for one per available core', () => {
    expect(loadProxyConfig({ ADMIN_API_KEY: KEY }).PROXY_WORKERS).toBe(1);
    expect(loadProxyConfig({ ADMIN_API_KEY: KEY, PROXY_WORKERS: '3' }).PROXY_WORKERS).toBe(3);
    expect(loadProxyConfig({ ADMIN_API_KEY: KEY, PROXY_WORKERS: 'auto' }).PROXY_WORKERS).toBe(
      Math.min(64, availableParallelism()),
    );
    for (const bad of ['Auto', 'auto2', '0', '-1']) {
      expect(problems({ ADMIN_API_KEY: KEY, PROXY_WORKERS: bad })).toEqual([
        'PROXY_WORKERS: must be a whole number from 1 to 64',
      ]);
    }
  });

  it('treats empty variables as unset', () => {
    const config = loadProxyConfig({ ADMIN_API_KEY: KEY, REDIS_URL: '', PROXY_PORT: '' });
    expect(config.PROXY_PORT).toBe(80);
    expect(config.REDIS_URL).toBeUndefined();
  });

  describe('UPSTREAM_CA_FILE', () => {
    let certs: TestCertificates;
    let dir: string;
    beforeAll(async () => {
      certs = await createTestCertificates();
      dir = await mkdtemp(join(tmpdir(), 'togather-ca-config-'));
    });
    afterAll(async () => {
      await certs?.remove();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    async function file(name: string, text: string): Promise<string> {
      const path = join(dir, name);
      await writeFile(path, text);
      return path;
    }

    it('is unset by default: https slots are checked against the default roots', () => {
      expect(loadProxyConfig({ ADMIN_API_KEY: KEY }).UPSTREAM_CA_FILE).toBeUndefined();
    });

    it('reads the PEM certificates at start', async () => {
      const pem = await readFile(certs.caFile, 'utf8');
      const bundle = await file('bundle.pem', `# comment\n${pem}\n${certs.cert}`);
      const config = loadProxyConfig({
        ADMIN_API_KEY: KEY,
        BLUE_URL: 'https://127.0.0.1:8443',
        UPSTREAM_CA_FILE: bundle,
      });
      expect(config.UPSTREAM_CA_FILE).toEqual({
        file: bundle,
        pem: `${pem.trim()}\n${certs.cert.trim()}`,
      });
    });

    it('refuses a missing file, a directory, a file without a certificate and a broken certificate', async () => {
      const missing = join(dir, 'missing.pem');
      const folder = join(dir, 'folder');
      await mkdir(folder, { recursive: true });
      const notPem = await file('not-pem.txt', 'this is not a certificate\n');
      const keyOnly = await file('key-only.pem', certs.key);
      const broken = await file(
        'broken.pem',
        '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n',
      );
      const cases: Array<[string, string]> = [
        [missing, `UPSTREAM_CA_FILE: cannot read ${missing} (ENOENT)`],
        [folder, `UPSTREAM_CA_FILE: cannot read ${folder} (EISDIR)`],
        [
          notPem,
          `UPSTREAM_CA_FILE: ${notPem} holds no PEM certificate (-----BEGIN CERTIFICATE----- block)`,
        ],
        [
          keyOnly,
          `UPSTREAM_CA_FILE: ${keyOnly} holds no PEM certificate (-----BEGIN CERTIFICATE----- block)`,
        ],
        [broken, `UPSTREAM_CA_FILE: certificate 1 of ${broken} is not a valid X.509 certificate`],
      ];
      for (const [path, problem] of cases) {
        expect(problems({ ADMIN_API_KEY: KEY, UPSTREAM_CA_FILE: path })).toEqual([problem]);
      }
    });

    it('is listed with the other bad variables', () => {
      const missing = join(dir, 'missing.pem');
      expect(
        problems({ ADMIN_API_KEY: 'short', UPSTREAM_CA_FILE: missing, GREEN_URL: 'ftp://x' }),
      ).toEqual([
        'ADMIN_API_KEY: must be at least 32 characters',
        'GREEN_URL: must be an http(s) URL',
        `UPSTREAM_CA_FILE: cannot read ${missing} (ENOENT)`,
      ]);
    });
  });

  describe('edge policy', () => {
    it('applies the documented defaults', () => {
      const config = loadProxyConfig({ ADMIN_API_KEY: KEY });
      expect(config).toMatchObject({
        COMPRESSION: true,
        MAX_BODY_SIZE: 10 * 1024 * 1024,
        SECURITY_HEADERS: true,
      });
      expect(config.CONTENT_SECURITY_POLICY).toBeUndefined();
      expect(config.ALLOWED_HOSTS).toBeUndefined();
    });

    it('reads every documented form', () => {
      const config = loadProxyConfig({
        ADMIN_API_KEY: KEY,
        COMPRESSION: 'off',
        MAX_BODY_SIZE: '512kb',
        SECURITY_HEADERS: '0',
        CONTENT_SECURITY_POLICY: "default-src 'self'; frame-ancestors 'none'",
        ALLOWED_HOSTS: ' Events.Example.org., www.example.org,[::1],127.0.0.1,www.example.org,',
      });
      expect(config).toMatchObject({
        COMPRESSION: false,
        MAX_BODY_SIZE: 524_288,
        SECURITY_HEADERS: false,
        CONTENT_SECURITY_POLICY: "default-src 'self'; frame-ancestors 'none'",
        ALLOWED_HOSTS: ['events.example.org', 'www.example.org', '[::1]', '127.0.0.1'],
      });
      for (const [text, bytes] of [
        ['0', 0],
        ['100b', 100],
        ['1.5kb', 1536],
        ['10MB', 10_485_760],
        ['2048', 2048],
      ] as const) {
        expect(loadProxyConfig({ ADMIN_API_KEY: KEY, MAX_BODY_SIZE: text }).MAX_BODY_SIZE).toBe(
          bytes,
        );
      }
    });

    it('lists every bad value with its reason', () => {
      expect(
        problems({
          ADMIN_API_KEY: KEY,
          COMPRESSION: 'gzip',
          MAX_BODY_SIZE: '10gb',
          SECURITY_HEADERS: 'yes',
          CONTENT_SECURITY_POLICY: "default-src 'self'\r\nX-Injected: 1",
          ALLOWED_HOSTS:
            'https://events.example.org,*.example.org,ok.example.org,events.example.org:8080',
        }),
      ).toEqual([
        'COMPRESSION: Invalid option: expected one of "0"|"1"|"on"|"off"|"true"|"false"',
        'MAX_BODY_SIZE: "10gb" is not a size (use 512kb, 10mb or plain bytes)',
        'SECURITY_HEADERS: Invalid option: expected one of "0"|"1"|"on"|"off"|"true"|"false"',
        'CONTENT_SECURITY_POLICY: must be one line of printable ASCII (a header value)',
        'ALLOWED_HOSTS: "https://events.example.org" is not a host name (list names such as events.example.org, without scheme, port, path or wildcard)',
        'ALLOWED_HOSTS: "*.example.org" is not a host name (list names such as events.example.org, without scheme, port, path or wildcard)',
        'ALLOWED_HOSTS: "events.example.org:8080" is not a host name (list names such as events.example.org, without scheme, port, path or wildcard)',
      ]);
      expect(problems({ ADMIN_API_KEY: KEY, MAX_BODY_SIZE: '-1kb', ALLOWED_HOSTS: ' , ' })).toEqual(
        [
          'MAX_BODY_SIZE: "-1kb" is not a size (use 512kb, 10mb or plain bytes)',
          'ALLOWED_HOSTS: lists no host name',
        ],
      );
    });
  });
});
