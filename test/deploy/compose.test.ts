import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parseEnv } from 'node:util';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { loadProxyConfig, tlsEnabled } from '../../proxy/config.js';
import { loadCompose, type Env } from '../support/compose.js';
import { promtool } from '../support/promtool.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DOCKER = join(ROOT, 'deploy', 'docker');
// The Compose Specification's JSON schema, kept in the repository with its
// licence and source (deploy/docker/schema/README.md).
const SCHEMA_DIR = join(DOCKER, 'schema');
const SCHEMA = join(SCHEMA_DIR, 'compose-spec.json');

type Json = Record<string, unknown>;
interface Service {
  image?: string;
  container_name?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  networks?: string[];
  profiles?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  deploy?: { replicas?: number };
  build?: { context: string; dockerfile?: string };
  extends?: { file: string; service: string };
  entrypoint?: string[];
}
interface ComposeFile {
  name?: string;
  services: Record<string, Service>;
  volumes?: Record<string, { name?: string } | null>;
  networks?: Record<string, { name?: string } | null>;
}

const FILES = ['docker-compose.yml', 'docker-compose.blue-green.yml'] as const;
const raw = Object.fromEntries(
  FILES.map((f) => [f, readFileSync(join(DOCKER, f), 'utf8')]),
) as Record<(typeof FILES)[number], string>;
// Compose honours YAML merge keys (<<: *anchor); the schema checks the merged result.
const base = parse(raw['docker-compose.yml'], { merge: true }) as ComposeFile;
const blueGreen = parse(raw['docker-compose.blue-green.yml'], { merge: true }) as ComposeFile;
const paths = (...files: string[]) => files.map((f) => join(DOCKER, f));
const BOTH = paths(...FILES);
// The two files together, merged and extended as compose does, not interpolated.
const stack = loadCompose(BOTH, { env: null, profiles: ['monitoring'] }).model
  .services as unknown as Record<string, Service>;

const envExampleText = readFileSync(join(DOCKER, '.env.example'), 'utf8');
const envExample = parseEnv(envExampleText);
/** .env.example with every CHANGE_ME replaced: what an operator's .env holds. */
const filledEnv: Record<string, string> = Object.fromEntries(
  Object.entries(envExample).map(([name, value]) => [
    name,
    value === 'CHANGE_ME' ? `${name.toLowerCase()}-`.padEnd(64, 'z') : (value ?? ''),
  ]),
);
const withoutGrafana = (env: Env): Env => ({ ...env, GRAFANA_ADMIN_PASSWORD: undefined });
const SECRET_NAME = /PASSWORD|SECRET|API_KEY|TOKEN/;

/** Variables compose interpolates: ${NAME}, ${NAME:-x}, ${NAME:?msg}; $${...} is a literal $. */
function interpolatedVariables(text: string): string[] {
  const names = new Set<string>();
  for (const match of text.matchAll(/(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)/g)) names.add(match[1]!);
  return [...names];
}

/** Host side of a port mapping, with ${VAR:-default} read as its default. */
function hostPort(mapping: string): { ip?: string; port: string } {
  const parts = mapping.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1').split(':');
  if (parts.length === 3) return { ip: parts[0], port: parts[1]! };
  return { port: parts[0]! };
}

describe('compose files against the compose specification', () => {
  it('the schema is in the repository with its Apache-2.0 licence and a note of its source', () => {
    expect(existsSync(SCHEMA), `compose schema at ${SCHEMA}`).toBe(true);
    expect(readFileSync(join(SCHEMA_DIR, 'LICENSE'), 'utf8')).toMatch(
      /^\s*Apache License\s+Version 2\.0, January 2004/,
    );
    const note = readFileSync(join(SCHEMA_DIR, 'README.md'), 'utf8');
    expect(note).toContain('https://github.com/compose-spec/compose-spec');
    expect(note).toMatch(/commit `[0-9a-f]{40}`/);
    expect(note).toContain('Apache License');
  });

  for (const file of FILES) {
    it(`${file} is valid`, () => {
      expect(existsSync(SCHEMA), `compose schema at ${SCHEMA}`).toBe(true);
      const schema = JSON.parse(readFileSync(SCHEMA, 'utf8')) as Json;
      // The schema declares draft-07, Ajv's default dialect.
      expect(schema.$schema).toMatch(/draft-07/);
      const validate = composeValidator(schema);
      const document = parse(raw[file], { merge: true }) as unknown;
      const ok = validate(document);
      expect(ok ? [] : validate.errors).toEqual([]);
    });
  }

  it('the validator does reject a broken file (so a pass means something)', () => {
    const schema = JSON.parse(readFileSync(SCHEMA, 'utf8')) as Json;
    const validate = composeValidator(schema);
    expect(validate({ services: { app: { image: 'x', ports: { a: 1 } } } })).toBe(false);
    expect(validate({ services: { app: { image: 'x', no_such_key: true } } })).toBe(false);
  });
});

describe('docker-compose.yml', () => {
  it('postgres: PostGIS 16 (+pgvector) image as togather-db with its volume, init script and pg_isready check', () => {
    const postgres = base.services.postgres!;
    expect(postgres.container_name).toBe('togather-db');
    expect(postgres.build?.context).toBe('./postgres');
    const from = readFileSync(join(DOCKER, 'postgres', 'Dockerfile'), 'utf8');
    expect(from).toMatch(/^FROM postgis\/postgis:16-/m);
    expect(postgres.volumes).toContain('togather-db-data:/var/lib/postgresql/data');
    const init = postgres.volumes!.find((v) => v.startsWith('./init-db.sh:'));
    expect(init).toMatch(/^\.\/init-db\.sh:\/docker-entrypoint-initdb\.d\/[\w-]+\.sh:ro$/);
    expect(postgres.healthcheck?.test.join(' ')).toContain('pg_isready');
    expect(postgres.command?.join(' ')).toContain('shared_preload_libraries=pg_stat_statements');
  });

  it('init-db.sh creates postgis, vector, pg_trgm and pg_stat_statements, and stops on error', () => {
    const script = readFileSync(join(DOCKER, 'init-db.sh'), 'utf8');
    expect(script).toContain('set -euo pipefail');
    expect(script).toContain('ON_ERROR_STOP=1');
    for (const extension of ['postgis', 'vector', 'pg_trgm', 'pg_stat_statements']) {
      expect(script).toContain(`CREATE EXTENSION IF NOT EXISTS ${extension};`);
    }
    expect(execFileSync('bash', ['-n', join(DOCKER, 'init-db.sh')]).toString()).toBe('');
  });

  it('redis: Redis 7 with append-only persistence and a health check', () => {
    const redis = base.services.redis!;
    expect(redis.image).toMatch(/^redis:7/);
    expect(redis.command?.join(' ')).toContain('--appendonly yes');
    expect(redis.healthcheck?.test).toEqual(['CMD', 'redis-cli', 'ping']);
  });

  it('app: the image running serve, env from .env, health check, waits for a healthy postgres', () => {
    const app = base.services.app!;
    expect(app.image).toBe('${TOGATHER_IMAGE:-togather:latest}');
    expect(app.build).toEqual({ context: '../..', dockerfile: 'Dockerfile' });
    expect(app.command?.[0]).toBe('serve');
    expect(app.healthcheck?.test.slice(0, 3)).toEqual(['CMD', '/app/server', 'healthcheck']);
    expect(app.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
    expect(app.volumes).toContain('togather-db-snapshots:/app/snapshots');
    expect(app.environment?.ADMIN_API_KEY).toBe('${ADMIN_API_KEY:?set ADMIN_API_KEY in .env}');
    expect(app.environment?.DATABASE_URL).toMatch(/@postgres:5432\//);
  });

  it('declares the volumes and the network by their fixed names', () => {
    expect(base.name).toBe('togather');
    for (const volume of ['togather-db-data', 'togather-db-snapshots']) {
      expect(base.volumes?.[volume]).toEqual({ name: volume });
    }
    expect(base.networks?.['togather-network']).toEqual({ name: 'togather-network' });
    for (const service of Object.values(base.services)) {
      expect(service.networks).toEqual(['togather-network']);
    }
  });
});

describe('docker-compose.blue-green.yml', () => {
  it('two slots with their containers, SLOT and direct ports 8081/8082 on loopback', () => {
    for (const [slot, port] of [
      ['blue', '8081'],
      ['green', '8082'],
    ] as const) {
      const service = blueGreen.services[`togather-${slot}`]!;
      expect(service.container_name).toBe(`togather-server-${slot}`);
      expect(service.environment?.SLOT).toBe(slot);
      expect(service.ports).toEqual([`127.0.0.1:${port}:8080`]);
      expect(service.command).toEqual(['serve']);
      expect(service.image).toBe(
        `\${TOGATHER_${slot.toUpperCase()}_IMAGE:-\${TOGATHER_IMAGE:-togather:latest}}`,
      );
      expect(service.healthcheck?.test.slice(0, 3)).toEqual(['CMD', '/app/server', 'healthcheck']);
      expect(service.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
      expect(service.networks).toEqual(['togather-network']);
    }
  });

  it('the slots get exactly the single app environment plus SLOT and TRUST_PROXY (the files cannot share an anchor)', () => {
    for (const slot of ['blue', 'green']) {
      const env = { ...blueGreen.services[`togather-${slot}`]!.environment };
      expect(env.TRUST_PROXY).toBe('on'); // behind the proxy, which sets X-Forwarded-For
      delete env.SLOT;
      delete env.TRUST_PROXY;
      expect(env).toEqual(base.services.app!.environment);
    }
  });

  it('replaces the single app instead of running it beside the slots (defined whole, so the file stands alone)', () => {
    expect(blueGreen.services.app).toEqual({
      extends: { file: 'docker-compose.yml', service: 'app' },
      deploy: { replicas: 0 },
    });
    expect(stack.app!.deploy).toEqual({ replicas: 0 });
  });

  it('takes PostgreSQL and Redis from docker-compose.yml, and declares the same network and volumes', () => {
    for (const service of ['postgres', 'redis']) {
      expect(blueGreen.services[service]).toEqual({
        extends: { file: 'docker-compose.yml', service },
      });
    }
    expect(blueGreen.networks).toEqual(base.networks);
    for (const [volume, declared] of Object.entries(base.volumes!)) {
      expect(blueGreen.volumes?.[volume], volume).toEqual(declared);
    }
  });

  it('proxy: the same image running proxy as togather-proxy, public 80, admin on 127.0.0.1:9080 only', () => {
    const proxy = blueGreen.services.proxy!;
    expect(proxy.container_name).toBe('togather-proxy');
    expect(proxy.image).toBe('${TOGATHER_IMAGE:-togather:latest}');
    expect(proxy.command).toEqual(['proxy']);
    expect(proxy.ports).toContain('${PROXY_PUBLIC_PORT:-80}:80');
    const admin = proxy.ports!.filter((p) => p.endsWith(':9080'));
    expect(admin).toEqual(['127.0.0.1:9080:9080']);
    const env = proxy.environment!;
    expect(env.ADMIN_API_KEY).toBe('${PROXY_ADMIN_API_KEY:?set PROXY_ADMIN_API_KEY in .env}');
    expect(env.PROXY_PORT).toBe('80');
    expect(env.ADMIN_PORT).toBe('9080');
    expect(env.REDIS_URL).toBe('redis://redis:6379');
    expect(env.BLUE_URL).toBe('http://togather-server-blue:8080');
    expect(env.GREEN_URL).toBe('http://togather-server-green:8080');
    expect(proxy.healthcheck?.test.join(' ')).toContain('http://127.0.0.1:9080/healthz');
    expect(proxy.depends_on).toEqual({
      redis: { condition: 'service_healthy' },
      'togather-blue': { condition: 'service_healthy' },
    });
  });

  it('proxy: TLS on 443, published, with the certificates in the named volume togather-certs', () => {
    const proxy = blueGreen.services.proxy!;
    expect(proxy.ports).toContain('${PROXY_TLS_PUBLIC_PORT:-443}:443');
    expect(proxy.volumes).toEqual(['togather-certs:/app/certs']);
    expect(blueGreen.volumes?.['togather-certs']).toEqual({ name: 'togather-certs' });
    const env = proxy.environment!;
    expect(env.PROXY_TLS_PORT).toBe('443');
    expect(env.CERT_DIR).toBe('/app/certs');
    // Every TLS variable reaches the proxy from .env, empty (unset) by default.
    for (const name of [
      'TLS_CERT_FILE',
      'TLS_KEY_FILE',
      'TLS_CERT_DIR',
      'ACME_DOMAINS',
      'ACME_EMAIL',
      'CERT_ENCRYPTION_KEY',
      'HTTPS_REDIRECT',
    ]) {
      expect(env[name], name).toBe(`\${${name}:-}`);
    }
    expect(env.HSTS).toBe('${HSTS:-31536000}');
    // togather deploy's checks through PROXY_URL (plain HTTP) must not be redirected.
    expect(env.HTTPS_REDIRECT_EXCEPT).toBe('${HTTPS_REDIRECT_EXCEPT:-/health,/version}');
    expect(env.ACME_DIRECTORY_URL).toBe(
      '${ACME_DIRECTORY_URL:-https://acme-v02.api.letsencrypt.org/directory}',
    );
  });

  it('the proxy environment compose gives is one togather proxy accepts: no TLS by default, ACME with .env set', () => {
    const proxyEnv = (env: Env) => {
      const result = loadCompose(BOTH, { env: withoutGrafana(env) });
      expect(result.errors).toEqual([]);
      return result.model.services.proxy!.environment as Record<string, string>;
    };
    const plain = loadProxyConfig(proxyEnv(filledEnv));
    expect(tlsEnabled(plain)).toBe(false);
    expect(plain).toMatchObject({
      PROXY_TLS_PORT: 443,
      CERT_DIR: '/app/certs',
      HSTS: 31_536_000,
      HTTPS_REDIRECT_EXCEPT: [
        { path: '/health', prefix: false },
        { path: '/version', prefix: false },
      ],
    });

    const live = loadProxyConfig(
      proxyEnv({
        ...filledEnv,
        ACME_DOMAINS: 'events.example.org,www.events.example.org',
        ACME_EMAIL: 'ops@example.org',
        ACME_DIRECTORY_URL: 'https://acme-staging-v02.api.letsencrypt.org/directory',
        CERT_ENCRYPTION_KEY: 'c'.repeat(64),
        HTTPS_REDIRECT_EXCEPT: '/health',
      }),
    );
    expect(tlsEnabled(live)).toBe(true);
    expect(live).toMatchObject({
      ACME_DOMAINS: ['events.example.org', 'www.events.example.org'],
      REDIS_URL: 'redis://redis:6379',
      HTTPS_REDIRECT_EXCEPT: [{ path: '/health', prefix: false }],
    });
    expect(live.HTTPS_REDIRECT).toBeUndefined();

    // ACME in the stack keeps its keys in Redis: without the key the proxy names it.
    expect(() =>
      loadProxyConfig(proxyEnv({ ...filledEnv, ACME_DOMAINS: 'events.example.org' })),
    ).toThrow(
      'CERT_ENCRYPTION_KEY: is required when ACME_DOMAINS and REDIS_URL are set (it encrypts the private keys kept in Redis; at least 32 characters)',
    );
  });

  it('the proxy reaches the slots by their container names on the shared network', () => {
    const env = blueGreen.services.proxy!.environment!;
    for (const slot of ['blue', 'green']) {
      const url = new URL(env[`${slot.toUpperCase()}_URL`]!);
      expect(url.hostname).toBe(stack[`togather-${slot}`]!.container_name);
      expect(url.port).toBe(stack[`togather-${slot}`]!.environment!.SERVER_PORT);
    }
  });

  it('no port of the host is published twice and only the public proxy ports (80, 443) are off loopback', () => {
    const seen = new Map<string, string>();
    for (const [name, service] of Object.entries(stack)) {
      if (service.deploy?.replicas === 0) continue;
      for (const mapping of service.ports ?? []) {
        const { ip, port } = hostPort(mapping);
        expect(seen.get(port), `host port ${port} of ${name}`).toBeUndefined();
        seen.set(port, name);
        const isPublic = name === 'proxy' && (mapping.endsWith(':80') || mapping.endsWith(':443'));
        if (!isPublic) expect(ip, `${name} ${mapping}`).toBe('127.0.0.1');
      }
    }
  });

  it('every depends_on names a service of the stack with a valid condition', () => {
    for (const [name, service] of Object.entries(stack)) {
      for (const [dependency, { condition }] of Object.entries(service.depends_on ?? {})) {
        expect(stack[dependency], `${name} depends on ${dependency}`).toBeDefined();
        expect(['service_started', 'service_healthy', 'service_completed_successfully']).toContain(
          condition,
        );
        if (condition === 'service_healthy') {
          expect(stack[dependency]!.healthcheck, `${dependency} has a health check`).toBeDefined();
        }
      }
    }
  });

  it('monitoring profile: Prometheus scraping the proxy and both slots, Grafana with the provisioned dashboard', () => {
    const prometheus = blueGreen.services.prometheus!;
    const grafana = blueGreen.services.grafana!;
    expect(prometheus.profiles).toEqual(['monitoring']);
    expect(grafana.profiles).toEqual(['monitoring']);
    const profiled = Object.entries(blueGreen.services).filter(([, s]) => s.profiles);
    expect(profiled.map(([n]) => n).sort()).toEqual(['grafana', 'prometheus']);

    const config = parse(readFileSync(join(DOCKER, 'prometheus', 'prometheus.yml'), 'utf8')) as {
      scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
    };
    const targets = config.scrape_configs.flatMap((j) =>
      j.static_configs.flatMap((s) => s.targets),
    );
    // The proxy's admin listener, and each slot's own metrics listener (never its app port).
    const slot = (name: string) => stack[`togather-${name}`]!;
    expect(targets.sort()).toEqual(
      [
        `${stack.proxy!.container_name}:${stack.proxy!.environment!.ADMIN_PORT}`,
        `${slot('blue').container_name}:${slot('blue').environment!.METRICS_PORT}`,
        `${slot('green').container_name}:${slot('green').environment!.METRICS_PORT}`,
      ].sort(),
    );
    expect(slot('blue').environment!.METRICS_PORT).toBe('9464');
    expect(slot('blue').environment!.METRICS_PORT).not.toBe(slot('blue').environment!.SERVER_PORT);
    // The metrics port is for Prometheus on the compose network, published nowhere.
    for (const name of ['blue', 'green']) {
      expect(slot(name).ports!.some((p) => p.endsWith(':9464'))).toBe(false);
    }
    for (const mount of [...prometheus.volumes!, ...grafana.volumes!]) {
      const source = mount.split(':')[0]!;
      if (source.startsWith('./')) expect(existsSync(join(DOCKER, source)), source).toBe(true);
    }

    const datasources = parse(
      readFileSync(join(DOCKER, 'grafana/provisioning/datasources/prometheus.yml'), 'utf8'),
    ) as { datasources: { uid: string; url: string }[] };
    const datasource = datasources.datasources[0]!;
    expect(new URL(datasource.url).hostname).toBe(prometheus.container_name);
    const dashboard = JSON.parse(
      readFileSync(join(DOCKER, 'grafana/dashboards/togather-proxy.json'), 'utf8'),
    ) as { panels: { title: string; datasource: { uid: string }; targets: { expr: string }[] }[] };
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)).join('\n');
    for (const metric of [
      'togather_proxy_requests_total',
      'togather_proxy_request_duration_seconds_bucket',
      'togather_proxy_active_slot',
      'togather_proxy_switches_total',
      'togather_proxy_inflight_requests',
      'togather_proxy_store_up',
    ]) {
      expect(exprs, metric).toContain(metric);
    }
    for (const panel of dashboard.panels) expect(panel.datasource.uid).toBe(datasource.uid);
  });

  it('prometheus.yml passes promtool check config', () => {
    const result = promtool(['check', 'config', join(DOCKER, 'prometheus/prometheus.yml')]);
    expect(result.output).toContain('SUCCESS');
    expect(result.status).toBe(0);
  });
});

describe('docker compose config, without Docker: each file alone and both together', () => {
  const validate = composeValidator(JSON.parse(readFileSync(SCHEMA, 'utf8')) as Json);
  const BLUE_GREEN_STACK = ['postgres', 'proxy', 'redis', 'togather-blue', 'togather-green'];
  const cases: Array<{ files: string[]; running: string[]; monitoring: string[] }> = [
    { files: ['docker-compose.yml'], running: ['app', 'postgres', 'redis'], monitoring: [] },
    {
      files: ['docker-compose.blue-green.yml'],
      running: BLUE_GREEN_STACK,
      monitoring: ['grafana', 'prometheus'],
    },
    { files: [...FILES], running: BLUE_GREEN_STACK, monitoring: ['grafana', 'prometheus'] },
  ];
  for (const { files, running, monitoring } of cases) {
    for (const profiles of [[], ['monitoring']]) {
      const command = `-f ${files.join(' -f ')}${profiles.length ? ' --profile monitoring' : ''}`;
      it(`${command}: interpolated, merged, every reference defined, schema-valid`, () => {
        // Without the profile the operator need not set Grafana's password at all.
        const env = profiles.length ? filledEnv : withoutGrafana(filledEnv);
        const result = loadCompose(paths(...files), { env, profiles });
        expect(result.errors).toEqual([]);
        expect(validate(result.model) ? [] : validate.errors).toEqual([]);
        for (const file of files) {
          const alone = parse(raw[file as (typeof FILES)[number]], { merge: true }) as unknown;
          expect(validate(alone) ? [] : validate.errors, file).toEqual([]);
        }
        const started = Object.entries(result.model.services)
          .filter(([, service]) => service.deploy?.replicas !== 0)
          .map(([name]) => name);
        expect(started.sort()).toEqual([...running, ...(profiles.length ? monitoring : [])].sort());
        expect(result.inactive.sort()).toEqual(profiles.length ? [] : monitoring);
        expect(result.model.name).toBe('togather');
        for (const [name, service] of Object.entries(result.model.services)) {
          for (const [key, value] of Object.entries(service.environment ?? {})) {
            expect(value, `${name}.${key}`).not.toMatch(/\$\{|CHANGE_ME/);
          }
        }
      });
    }
  }

  it('the blue-green file alone: `up -d togather-green` has its postgres, network and volume', () => {
    const result = loadCompose(paths('docker-compose.blue-green.yml'), {
      env: withoutGrafana(filledEnv),
      services: ['togather-green'],
    });
    expect(result.errors).toEqual([]);
    const { services, networks, volumes } = result.model;
    expect(Object.keys(services).sort()).toEqual(['postgres', 'togather-green']);
    expect(services.postgres).toMatchObject({
      container_name: 'togather-db',
      build: { context: './postgres' },
      volumes: expect.arrayContaining(['togather-db-data:/var/lib/postgresql/data']),
    });
    expect(services['togather-green']!.depends_on).toEqual({
      postgres: { condition: 'service_healthy' },
    });
    expect(services['togather-green']!.environment!.DATABASE_URL).toBe(
      `postgres://togather:${filledEnv.POSTGRES_PASSWORD}@postgres:5432/togather`,
    );
    expect(Object.keys(networks)).toEqual(['togather-network']);
    expect(volumes['togather-db-snapshots']).toEqual({ name: 'togather-db-snapshots' });
  });

  it('together, the files merge into the same services as the blue-green file alone', () => {
    const together = loadCompose(BOTH, { env: filledEnv, profiles: ['monitoring'] });
    const alone = loadCompose(paths('docker-compose.blue-green.yml'), {
      env: filledEnv,
      profiles: ['monitoring'],
    });
    expect(together.model.services).toEqual(alone.model.services);
    expect(together.model.volumes).toEqual(alone.model.volumes);
    expect(together.model.networks).toEqual(alone.model.networks);
  });

  it('a missing required secret still stops it, naming the variable; Grafana’s password never does', () => {
    const result = loadCompose(BOTH, {
      env: { ...withoutGrafana(filledEnv), POSTGRES_PASSWORD: undefined, JWT_SECRET: '' },
    });
    expect(result.errors).toContain(
      'error while interpolating services.postgres.environment.POSTGRES_PASSWORD: required variable POSTGRES_PASSWORD is missing a value: set POSTGRES_PASSWORD in .env',
    );
    expect(result.errors).toContain(
      'error while interpolating services.togather-blue.environment.JWT_SECRET: required variable JWT_SECRET is missing a value: set JWT_SECRET in .env',
    );
    expect(result.errors.join('\n')).not.toContain('GRAFANA');
  });

  it('Grafana refuses to start without a real password, and runs the image’s entry point with one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'togather-grafana-'));
    try {
      const stub = join(dir, 'run.sh');
      writeFileSync(stub, '#!/bin/sh\necho "grafana started $*"\n');
      chmodSync(stub, 0o755);
      const start = (password: string | undefined) => {
        const env = { ...filledEnv, GRAFANA_ADMIN_PASSWORD: password };
        const grafana = loadCompose(BOTH, { env, profiles: ['monitoring'] }).model.services
          .grafana!;
        const [shell, flag, script, name] = grafana.entrypoint!;
        expect([shell, flag]).toEqual(['/bin/sh', '-c']);
        expect(script).toContain('exec /run.sh "$@"');
        return spawnSync('sh', ['-c', script!.replace('/run.sh', stub), name!], {
          encoding: 'utf8',
          env: {
            PATH: process.env.PATH,
            GF_SECURITY_ADMIN_PASSWORD: grafana.environment!.GF_SECURITY_ADMIN_PASSWORD ?? '',
          },
        });
      };
      for (const password of [undefined, '', 'CHANGE_ME']) {
        const refused = start(password);
        expect(refused.status, String(password)).toBe(1);
        expect(refused.stderr).toBe(
          'togather-grafana: set GRAFANA_ADMIN_PASSWORD in .env (the monitoring profile needs it)\n',
        );
        expect(refused.stdout).toBe('');
      }
      const started = start('a-real-grafana-password');
      expect(started.stderr).toBe('');
      expect(started.stdout).toBe('grafana started \n');
      expect(started.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the compose model of the tests (so a pass above means something)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'togather-compose-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  it('interpolates like compose: defaults, nested defaults, required, alternatives, $$', () => {
    const file = write(
      'interpolate.yml',
      [
        'services:',
        '  web:',
        '    image: ${IMAGE:-${FALLBACK:-web:latest}}',
        '    environment:',
        '      SET_EMPTY: ${EMPTY-unused}',
        '      UNSET_OR_EMPTY: ${EMPTY:-used}',
        '      ALTERNATIVE: ${NAME:+name is set}',
        '      REQUIRED_SET: ${EMPTY?only unset fails}',
        '      LITERAL: $$HOME and $${NAME}',
        '      PLAIN: $NAME-${NAME}',
        '      MISSING: ${NOT_THERE:?NOT_THERE is needed}',
      ].join('\n'),
    );
    const result = loadCompose([file], { env: { EMPTY: '', NAME: 'n' } });
    expect(result.model.services.web).toEqual({
      image: 'web:latest',
      environment: {
        SET_EMPTY: '',
        UNSET_OR_EMPTY: 'used',
        ALTERNATIVE: 'name is set',
        REQUIRED_SET: '',
        LITERAL: '$HOME and ${NAME}',
        PLAIN: 'n-n',
        MISSING: '',
      },
    });
    expect(result.errors).toEqual([
      'error while interpolating services.web.environment.MISSING: required variable NOT_THERE is missing a value: NOT_THERE is needed',
    ]);
  });

  it('merges -f files: commands replaced, ports and volumes unique, mappings merged, lists appended', () => {
    const first = write(
      'first.yml',
      [
        'services:',
        '  web:',
        '    image: web',
        '    command: [serve, --a]',
        "    ports: ['8080:80']",
        "    volumes: ['data:/data', './conf:/conf:ro']",
        '    environment: [A=1, B=1]',
        '    networks: [front]',
        '    healthcheck: { test: [CMD, a], interval: 5s }',
        '  extra:',
        '    image: extra',
        '    profiles: [tools]',
        'networks: { front: {} }',
        'volumes: { data: {} }',
      ].join('\n'),
    );
    const second = write(
      'second.yml',
      [
        'services:',
        '  web:',
        '    command: [serve, --b]',
        "    ports: ['8080:80', '127.0.0.1:9090:90']",
        "    volumes: ['other:/data']",
        '    environment: { B: "2", C: "3" }',
        '    depends_on: [extra]',
        '    healthcheck: { test: [CMD, b] }',
        'volumes: { other: {} }',
      ].join('\n'),
    );
    const withoutTools = loadCompose([first, second], { env: {} });
    expect(withoutTools.model.services.web).toEqual({
      image: 'web',
      command: ['serve', '--b'],
      ports: ['8080:80', '127.0.0.1:9090:90'],
      volumes: ['other:/data', './conf:/conf:ro'],
      environment: { A: '1', B: '2', C: '3' },
      networks: { front: null },
      healthcheck: { test: ['CMD', 'b'], interval: '5s' },
      depends_on: { extra: { condition: 'service_started' } },
    });
    expect(withoutTools.inactive).toEqual(['extra']);
    expect(withoutTools.errors).toEqual(['service "web" depends on undefined service "extra"']);
    expect(loadCompose([first, second], { env: {}, profiles: ['tools'] }).errors).toEqual([]);
    // Naming a service enables it and what it depends on, whatever their profiles.
    const named = loadCompose([first, second], { env: {}, services: ['web'] });
    expect(named.errors).toEqual([]);
    expect(Object.keys(named.model.services).sort()).toEqual(['extra', 'web']);
  });

  it('refuses undefined networks, volumes, services, extends targets, a missing image and a reused container name', () => {
    const file = write(
      'broken.yml',
      [
        'services:',
        '  broken:',
        '    image: b',
        '    networks: [nowhere]',
        "    volumes: ['gone:/x', './here:/y', '/abs:/z']",
        '    depends_on: { ghost: { condition: service_healthy } }',
        '  optional:',
        '    image: o',
        '    depends_on: { ghost: { condition: service_started, required: false } }',
        '  imageless:',
        '    container_name: same',
        '  twin:',
        '    image: t',
        '    container_name: same',
        '  orphan:',
        '    extends: { file: broken.yml, service: nobody }',
      ].join('\n'),
    );
    expect(loadCompose([file], { env: {} }).errors).toEqual([
      `services.orphan.extends: no service "nobody" in ${file}`,
      'service "broken" depends on undefined service "ghost"',
      'service "broken" refers to undefined network nowhere',
      'service "broken" refers to undefined volume gone',
      'service "imageless" has neither an image nor a build context specified',
      'services "imageless" and "twin" have the same container_name "same"',
      'service "orphan" has neither an image nor a build context specified',
    ]);
  });
});

describe('.env.example and secrets', () => {
  it('defines every variable either compose file interpolates', () => {
    for (const file of FILES) {
      for (const name of interpolatedVariables(raw[file])) {
        expect(Object.keys(envExample), `${name} (used in ${file})`).toContain(name);
      }
    }
  });

  it('has a comment above every variable', () => {
    const lines = envExampleText.split('\n');
    lines.forEach((line, i) => {
      if (/^[A-Z_][A-Z0-9_]*=/.test(line)) {
        expect(lines[i - 1], `comment above ${line}`).toMatch(/^#/);
      }
    });
  });

  it('every secret in .env.example is a CHANGE_ME placeholder', () => {
    const secrets = Object.entries(envExample).filter(([name]) => SECRET_NAME.test(name));
    expect(secrets.map(([name]) => name).sort()).toEqual(
      [
        'ADMIN_API_KEY',
        'ADMIN_PASSWORD',
        'GRAFANA_ADMIN_PASSWORD',
        'JWT_SECRET',
        'POSTGRES_PASSWORD',
        'PROXY_ADMIN_API_KEY',
      ].sort(),
    );
    for (const [name, value] of secrets) expect(value, name).toBe('CHANGE_ME');
  });

  it('no compose file carries a secret value: secrets are required interpolations without defaults', () => {
    for (const [name, service] of Object.entries(stack)) {
      for (const [key, value] of Object.entries(service.environment ?? {})) {
        if (!SECRET_NAME.test(key)) continue;
        if (service.profiles) {
          // Compose interpolates every profile, so a profile's secret cannot be
          // required there: empty by default, refused by its container at start.
          expect(value, `${name}.${key}`).toMatch(/^\$\{[A-Z_]+:-\}$/);
          expect(service.entrypoint?.join(' '), `${name} guards ${key}`).toContain(key);
          continue;
        }
        expect(value, `${name}.${key}`).toMatch(/^\$\{[A-Z_]+:\?[^}]*\}$/);
      }
      const databaseUrl = service.environment?.DATABASE_URL;
      if (databaseUrl !== undefined) {
        expect(databaseUrl, `${name} DATABASE_URL`).toMatch(
          /^postgres:\/\/\$\{POSTGRES_USER:-\w+\}:\$\{POSTGRES_PASSWORD:\?[^}]*\}@/,
        );
      }
    }
  });

  it('the proxy and the app get their admin keys from two different variables', () => {
    const proxyKey = interpolatedVariables(stack.proxy!.environment!.ADMIN_API_KEY!);
    const appKey = interpolatedVariables(stack['togather-blue']!.environment!.ADMIN_API_KEY!);
    expect(proxyKey).toEqual(['PROXY_ADMIN_API_KEY']);
    expect(appKey).toEqual(['ADMIN_API_KEY']);
    expect(stack['togather-blue']!.environment).not.toHaveProperty('PROXY_ADMIN_API_KEY');
    expect(stack.proxy!.environment).not.toHaveProperty('JWT_SECRET');
  });

  it('no .env file with real values is committed', () => {
    const tracked = execFileSync('git', ['ls-files'], { cwd: ROOT, encoding: 'utf8' }).split('\n');
    const envFiles = tracked.filter((f) => /(^|\/)\.env(\.|$)/.test(f));
    expect(envFiles).toEqual(['deploy/docker/.env.example']);
    const gitignore = readFileSync(join(ROOT, '.gitignore'), 'utf8');
    expect(gitignore).toMatch(/^deploy\/docker\/\.env$/m);
  });
});

/**
 * Ajv for the compose schema: draft-07 (Ajv's default dialect), whose
 * meta-schema the file names by its https address; registered under that
 * address too, so the schema itself is still checked against draft-07.
 */
function composeValidator(schema: Json) {
  const ajv = new Ajv({ allErrors: true, strict: false });
  const require = createRequire(import.meta.url);
  const draft07 = require('ajv/dist/refs/json-schema-draft-07.json') as Json;
  ajv.addMetaSchema({ ...draft07, $id: schema.$schema as string });
  return ajv.compile(schema);
}
