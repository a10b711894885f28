import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../common/config.js';
import { loadProxyConfig, tlsEnabled } from '../../../proxy/config.js';
import {
  certificateSources,
  LETS_ENCRYPT_DIRECTORY,
  loadTlsConfig,
} from '../../../proxy/tls/tls-config.js';

function problems(env: Record<string, string>): readonly string[] {
  try {
    loadTlsConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('TLS and ACME configuration', () => {
  it('applies the documented defaults and sets no certificate source', () => {
    const config = loadTlsConfig({});
    expect(config).toEqual({
      PROXY_TLS_PORT: 443,
      ACME_DOMAINS: [],
      ACME_DIRECTORY_URL: LETS_ENCRYPT_DIRECTORY,
      ACME_RENEW_BEFORE: 30 * 86_400_000,
      CERT_DIR: './.togather/certs',
    });
    expect(certificateSources(config)).toEqual([]);
  });

  it('reads every variable', () => {
    const config = loadTlsConfig({
      PROXY_TLS_PORT: '8443',
      TLS_CERT_FILE: '/etc/tls/edge.crt',
      TLS_KEY_FILE: '/etc/tls/edge.key',
      ACME_DOMAINS: ' Events.Togather.org, api.togather.org,events.togather.org,',
      ACME_EMAIL: 'ops@togather.org',
      ACME_DIRECTORY_URL: 'https://acme-staging-v02.api.letsencrypt.org/directory',
      ACME_CA_FILE: '/etc/tls/test-ca.pem',
      ACME_RENEW_BEFORE: '12h',
      CERT_DIR: '/var/lib/togather/certs',
      CERT_ENCRYPTION_KEY: 'e'.repeat(32),
      REDIS_URL: 'redis://127.0.0.1:6379',
    });
    expect(config).toMatchObject({
      PROXY_TLS_PORT: 8443,
      ACME_DOMAINS: ['events.togather.org', 'api.togather.org'],
      ACME_RENEW_BEFORE: 43_200_000,
    });
    expect(certificateSources(config)).toEqual(['file', 'acme']);
    expect(certificateSources(loadTlsConfig({ TLS_CERT_DIR: '/etc/tls' }))).toEqual(['directory']);
  });

  it('treats empty values as unset (compose passes VAR=)', () => {
    expect(
      loadTlsConfig({ TLS_CERT_FILE: '', ACME_DOMAINS: '', PROXY_TLS_PORT: '' }),
    ).toMatchObject({ PROXY_TLS_PORT: 443, ACME_DOMAINS: [] });
  });

  it('lists every bad variable at once, cross-field checks included', () => {
    expect(
      problems({
        PROXY_TLS_PORT: '70000',
        TLS_CERT_FILE: '/etc/tls/edge.crt',
        TLS_CERT_DIR: '/etc/tls',
        ACME_DOMAINS: 'ok.example.org,*.example.org,bad_name.org,10.0.0.1,-x.org',
        ACME_EMAIL: 'not-an-address',
        ACME_DIRECTORY_URL: 'http://acme.example.org/directory',
        ACME_RENEW_BEFORE: 'soon',
        CERT_ENCRYPTION_KEY: 'short',
      }),
    ).toEqual([
      'PROXY_TLS_PORT: must be a port number (0-65535)',
      'ACME_DOMAINS: *.example.org: wildcard names need a DNS-01 challenge; ACME here proves names over HTTP-01',
      'ACME_DOMAINS: bad_name.org: not a DNS name (letters, digits and hyphens between dots)',
      'ACME_DOMAINS: 10.0.0.1: an IP address, not a DNS name',
      'ACME_DOMAINS: -x.org: not a DNS name (letters, digits and hyphens between dots)',
      'ACME_EMAIL: must be an e-mail address',
      'ACME_DIRECTORY_URL: must be an https URL (RFC 8555 requires HTTPS)',
      'ACME_RENEW_BEFORE: "soon" is not a duration (use 500ms, 30s, 2m or plain milliseconds)',
      'CERT_ENCRYPTION_KEY: must be at least 32 characters',
      'TLS_KEY_FILE: is required with TLS_CERT_FILE',
      'TLS_CERT_DIR: set either TLS_CERT_DIR or TLS_CERT_FILE + TLS_KEY_FILE, not both',
    ]);
  });

  it('refuses half a file pair, an empty domain list, a too short renewal and a clash with PROXY_PORT', () => {
    expect(
      problems({
        TLS_KEY_FILE: '/etc/tls/edge.key',
        ACME_DOMAINS: ' , ,',
        ACME_RENEW_BEFORE: '30s',
      }),
    ).toEqual([
      'ACME_DOMAINS: must name at least one domain',
      'ACME_RENEW_BEFORE: must be at least 1m (renewal needs time before the certificate expires)',
      'TLS_CERT_FILE: is required with TLS_KEY_FILE',
    ]);
    expect(
      problems({ TLS_CERT_DIR: '/etc/tls', PROXY_TLS_PORT: '8080', PROXY_PORT: '8080' }),
    ).toEqual(['PROXY_TLS_PORT: must differ from PROXY_PORT (8080)']);
    // No certificate source: the port is not used, so no clash.
    expect(problems({ PROXY_TLS_PORT: '8080', PROXY_PORT: '8080' })).toEqual([]);
  });

  it('requires CERT_ENCRYPTION_KEY when ACME keeps its keys in Redis', () => {
    expect(problems({ ACME_DOMAINS: 'events.togather.org', REDIS_URL: 'redis://r:6379' })).toEqual([
      'CERT_ENCRYPTION_KEY: is required when ACME_DOMAINS and REDIS_URL are set (it encrypts the private keys kept in Redis; at least 32 characters)',
    ]);
    expect(problems({ ACME_DOMAINS: 'events.togather.org' })).toEqual([]);
    expect(problems({ TLS_CERT_DIR: '/etc/tls', REDIS_URL: 'redis://r:6379' })).toEqual([]);
  });
});

describe('togather proxy reads the TLS variables', () => {
  const KEY = 'k'.repeat(32);
  const proxyProblems = (env: Record<string, string>): readonly string[] => {
    try {
      loadProxyConfig({ ADMIN_API_KEY: KEY, ...env });
    } catch (error) {
      if (error instanceof ConfigError) return error.problems;
      throw error;
    }
    return [];
  };

  it('has no TLS listener by default; redirect and HSTS wait for one', () => {
    const config = loadProxyConfig({ ADMIN_API_KEY: KEY });
    expect(config).toMatchObject({
      PROXY_TLS_PORT: 443,
      ACME_DOMAINS: [],
      CERT_DIR: './.togather/certs',
      HTTPS_REDIRECT_EXCEPT: [],
      HSTS: 31_536_000,
    });
    expect(config.HTTPS_REDIRECT).toBeUndefined();
    expect(tlsEnabled(config)).toBe(false);
  });

  it('reads a certificate source, the redirect exceptions and HSTS', () => {
    const config = loadProxyConfig({
      ADMIN_API_KEY: KEY,
      PROXY_PORT: '8080',
      PROXY_TLS_PORT: '8443',
      TLS_CERT_DIR: '/etc/togather/tls',
      HTTPS_REDIRECT: 'off',
      HTTPS_REDIRECT_EXCEPT: '/health, /public/*,',
      HSTS: '600',
    });
    expect(tlsEnabled(config)).toBe(true);
    expect(config).toMatchObject({
      PROXY_TLS_PORT: 8443,
      TLS_CERT_DIR: '/etc/togather/tls',
      HTTPS_REDIRECT: false,
      HTTPS_REDIRECT_EXCEPT: [
        { path: '/health', prefix: false },
        { path: '/public/', prefix: true },
      ],
      HSTS: 600,
    });
    expect(loadProxyConfig({ ADMIN_API_KEY: KEY, HSTS: 'off' }).HSTS).toBeNull();
    expect(loadProxyConfig({ ADMIN_API_KEY: KEY, HSTS: '0' }).HSTS).toBe(0);
  });

  it('names every bad TLS variable with the proxy’s own, cross-field checks included', () => {
    expect(
      proxyProblems({
        PROXY_PORT: '8080',
        PROXY_TLS_PORT: '8080',
        TLS_CERT_FILE: '/etc/tls/edge.crt',
        ACME_DOMAINS: 'events.togather.org,*.togather.org',
        REDIS_URL: 'redis://127.0.0.1:6379',
        HTTPS_REDIRECT: 'sometimes',
        HTTPS_REDIRECT_EXCEPT: '/health,public,/a?b=1,/x*y',
        HSTS: 'forever',
      }),
    ).toEqual([
      'ACME_DOMAINS: *.togather.org: wildcard names need a DNS-01 challenge; ACME here proves names over HTTP-01',
      'HTTPS_REDIRECT: must be on or off (on|off|true|false|1|0)',
      'HTTPS_REDIRECT_EXCEPT: public: not a path (start with /, no query; a trailing * matches every path below it)',
      'HTTPS_REDIRECT_EXCEPT: /a?b=1: not a path (start with /, no query; a trailing * matches every path below it)',
      'HTTPS_REDIRECT_EXCEPT: /x*y: not a path (start with /, no query; a trailing * matches every path below it)',
      'HSTS: must be a max-age in seconds (0 to 2147483647, e.g. 31536000) or off',
      'TLS_KEY_FILE: is required with TLS_CERT_FILE',
      'PROXY_TLS_PORT: must differ from PROXY_PORT (8080)',
    ]);
  });

  it('refuses HTTPS_REDIRECT=on without a certificate source, a bad TLS port and a short encryption key', () => {
    expect(proxyProblems({ HTTPS_REDIRECT: 'on' })).toEqual([
      'HTTPS_REDIRECT: is on but there is no TLS listener to redirect to (set TLS_CERT_FILE + TLS_KEY_FILE, TLS_CERT_DIR or ACME_DOMAINS)',
    ]);
    expect(proxyProblems({ PROXY_TLS_PORT: 'https' })).toEqual([
      'PROXY_TLS_PORT: must be a port number (0-65535)',
    ]);
    expect(proxyProblems({ HSTS: '2147483648' })).toEqual([
      'HSTS: must be a max-age in seconds (0 to 2147483647, e.g. 31536000) or off',
    ]);
    expect(
      proxyProblems({
        ACME_DOMAINS: 'events.togather.org',
        REDIS_URL: 'redis://127.0.0.1:6379',
        CERT_ENCRYPTION_KEY: 'short',
      }),
    ).toEqual(['CERT_ENCRYPTION_KEY: must be at least 32 characters']);
  });
});
