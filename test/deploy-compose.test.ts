import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parseEnv } from 'node:util';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
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
const stack: Record<string, Service> = { ...base.services };
for (const [name, service] of Object.entries(blueGreen.services)) {
  stack[name] = { ...stack[name], ...service };
}

const envExampleText = readFileSync(join(DOCKER, '.env.example'), 'utf8');
const envExample = parseEnv(envExampleText);
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

  it('replaces the single app instead of running it beside the slots', () => {
    expect(blueGreen.services.app).toEqual({ deploy: { replicas: 0 } });
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

  it('the proxy reaches the slots by their container names on the shared network', () => {
    const env = blueGreen.services.proxy!.environment!;
    for (const slot of ['blue', 'green']) {
      const url = new URL(env[`${slot.toUpperCase()}_URL`]!);
      expect(url.hostname).toBe(stack[`togather-${slot}`]!.container_name);
      expect(url.port).toBe(stack[`togather-${slot}`]!.environment!.SERVER_PORT);
    }
  });

  it('no port of the host is published twice and only the public proxy port is off loopback', () => {
    const seen = new Map<string, string>();
    for (const [name, service] of Object.entries(stack)) {
      if (service.deploy?.replicas === 0) continue;
      for (const mapping of service.ports ?? []) {
        const { ip, port } = hostPort(mapping);
        expect(seen.get(port), `host port ${port} of ${name}`).toBeUndefined();
        seen.set(port, name);
        const isPublic = name === 'proxy' && mapping.endsWith(':80');
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
    expect(targets.sort()).toEqual(
      ['togather-proxy:9080', 'togather-server-blue:8080', 'togather-server-green:8080'].sort(),
    );
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

  it.skipIf(!hasCommand('promtool'))('prometheus.yml passes promtool check config', () => {
    const out = execFileSync(
      'promtool',
      ['check', 'config', join(DOCKER, 'prometheus/prometheus.yml')],
      {
        encoding: 'utf8',
      },
    );
    expect(out).toContain('SUCCESS');
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

function hasCommand(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
