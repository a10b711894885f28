/**
 * What `docker compose -f A -f B [--profile P] config [SERVICE...]` does to
 * compose files, for tests on machines without Docker: interpolation of
 * `${...}` from an environment, `extends` (also from another file), the merge
 * of several files by the Compose Specification's rules, profiles, and the
 * consistency checks compose makes before it runs anything (every referenced
 * service, network and volume defined, an image or a build for every
 * service, unique container names).
 *
 * Like compose (compose-go), it interpolates every service of every file
 * before profiles are applied: a required `${VAR:?}` in a service of an
 * inactive profile still fails.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { parse } from 'yaml';

export type Env = Readonly<Record<string, string | undefined>>;

type Json = Record<string, unknown>;

export interface Service {
  image?: string;
  build?: string | { context: string; dockerfile?: string };
  container_name?: string;
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string | null>;
  ports?: string[];
  volumes?: string[];
  /** Normalised to a mapping, as `docker compose config` prints it. */
  networks?: Record<string, unknown>;
  profiles?: string[];
  healthcheck?: { test: string[] } & Json;
  /** Normalised to a mapping. */
  depends_on?: Record<string, { condition: string; required?: boolean }>;
  deploy?: { replicas?: number } & Json;
  extends?: string | { service: string; file?: string };
  [key: string]: unknown;
}

export interface ComposeModel {
  name?: string;
  services: Record<string, Service>;
  networks: Record<string, Json | null>;
  volumes: Record<string, Json | null>;
}

export interface ComposeResult {
  /** The merged model of the active services (empty when errors were found). */
  model: ComposeModel;
  /** Services left out: their profiles are not active and nothing selected them. */
  inactive: string[];
  /** Every problem compose would refuse the files for, in its wording where it has one. */
  errors: string[];
}

export interface ComposeOptions {
  /** The variables `${...}` reads (the shell's environment and `.env`); null: no interpolation. */
  env: Env | null;
  profiles?: readonly string[];
  /** `docker compose up SERVICE...`: these and what they depend on, whatever their profile. */
  services?: readonly string[];
}

/** Loads the files in order (the first is the base, as with `-f`) and checks the result. */
export function loadCompose(files: readonly string[], options: ComposeOptions): ComposeResult {
  const errors: string[] = [];
  const cache = new Map<string, Json>();
  const load = (path: string): Json => {
    let document = cache.get(path);
    if (document === undefined) {
      // Compose honours YAML merge keys (<<: *anchor).
      const parsed = parse(readFileSync(path, 'utf8'), { merge: true }) as unknown;
      document = isMapping(parsed) ? parsed : {};
      if (options.env !== null) document = interpolateTree(document, options.env, '', errors);
      cache.set(path, document);
    }
    return document;
  };

  let merged: Json = {};
  for (const file of files) {
    const document = structuredClone(load(file));
    const services = mapping(document.services);
    for (const name of Object.keys(services)) {
      services[name] = resolveExtends(file, name, load, errors, []);
    }
    document.services = services;
    merged = mergeMappings(merged, document, '');
  }

  const all = mapping(merged.services) as Record<string, Service>;
  for (const service of Object.values(all)) normaliseService(service);
  const active = activeServices(all, options, errors);
  const services = Object.fromEntries(Object.entries(all).filter(([name]) => active.has(name)));
  const model: ComposeModel = {
    ...(typeof merged.name === 'string' ? { name: merged.name } : {}),
    services,
    networks: mapping(merged.networks) as Record<string, Json | null>,
    volumes: mapping(merged.volumes) as Record<string, Json | null>,
  };
  errors.push(...consistencyErrors(model));
  return {
    model,
    inactive: Object.keys(all).filter((name) => !active.has(name)),
    errors,
  };
}

// --- interpolation ---------------------------------------------------------

/** Every string value of the tree interpolated (keys are not, as in compose). */
function interpolateTree(tree: Json, env: Env, path: string, errors: string[]): Json {
  const visit = (value: unknown, at: string): unknown => {
    if (typeof value === 'string') return interpolate(value, env, at, errors);
    if (Array.isArray(value)) return value.map((item, i) => visit(item, `${at}[${i}]`));
    if (isMapping(value)) {
      return Object.fromEntries(
        Object.entries(value).map(([key, item]) => [key, visit(item, at ? `${at}.${key}` : key)]),
      );
    }
    return value;
  };
  return visit(tree, path) as Json;
}

/**
 * Compose's interpolation of one value: `$$` is a literal `$`; `$NAME`,
 * `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?error}`,
 * `${NAME?error}`, `${NAME:+other}`, `${NAME+other}`, defaults nested.
 */
export function interpolate(text: string, env: Env, path: string, errors: string[]): string {
  let out = '';
  for (let i = 0; i < text.length;) {
    const c = text[i]!;
    if (c !== '$') {
      out += c;
      i++;
      continue;
    }
    const next = text[i + 1];
    if (next === '$') {
      out += '$';
      i += 2;
    } else if (next === '{') {
      const end = closingBrace(text, i + 1);
      if (end < 0) {
        errors.push(`${path}: invalid interpolation format for "${text}"`);
        return text;
      }
      out += substitute(text.slice(i + 2, end), env, path, errors);
      i = end + 1;
    } else {
      const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i + 1))?.[0];
      if (name === undefined) {
        errors.push(`${path}: invalid interpolation format for "${text}": a lone $ (write $$)`);
        return text;
      }
      out += env[name] ?? '';
      i += 1 + name.length;
    }
  }
  return out;
}

/** The `}` closing the `${` whose `{` is at `open`, counting nested `${`; -1 if none. */
function closingBrace(text: string, open: number): number {
  let depth = 1;
  for (let j = open + 1; j < text.length; j++) {
    if (text[j] === '$' && text[j + 1] === '{') {
      depth++;
      j++;
    } else if (text[j] === '}' && --depth === 0) {
      return j;
    }
  }
  return -1;
}

function substitute(expression: string, env: Env, path: string, errors: string[]): string {
  const match = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([\s\S]*))?$/.exec(expression);
  if (!match) {
    errors.push(`${path}: invalid interpolation format for "\${${expression}}"`);
    return '';
  }
  const name = match[1]!;
  const operator = match[2];
  const rest = match[3] ?? '';
  const value = env[name];
  const set = value !== undefined;
  const nonEmpty = set && value !== '';
  const own = value ?? '';
  const inner = () => interpolate(rest, env, path, errors);
  switch (operator) {
    case undefined:
      return own;
    case ':-':
      return nonEmpty ? own : inner();
    case '-':
      return set ? own : inner();
    case ':?':
    case '?':
      if (operator === ':?' ? !nonEmpty : !set) {
        errors.push(
          `error while interpolating ${path}: required variable ${name} is missing a value: ${inner()}`,
        );
      }
      return own;
    case ':+':
      return nonEmpty ? inner() : '';
    default:
      return set ? inner() : '';
  }
}

// --- extends and merge -----------------------------------------------------

function resolveExtends(
  file: string,
  name: string,
  load: (path: string) => Json,
  errors: string[],
  chain: string[],
): Service {
  const key = `${file}#${name}`;
  const service = mapping(mapping(load(file).services)[name]) as Service;
  if (service.extends === undefined) return structuredClone(service);
  if (chain.includes(key)) {
    errors.push(`services.${name}.extends: circular reference ${[...chain, key].join(' -> ')}`);
    return {};
  }
  const target =
    typeof service.extends === 'string' ? { service: service.extends } : service.extends;
  const from = target.file
    ? isAbsolute(target.file)
      ? target.file
      : join(dirname(file), target.file)
    : file;
  if (!(target.service in mapping(load(from).services))) {
    errors.push(`services.${name}.extends: no service "${target.service}" in ${from}`);
    return {};
  }
  const base = resolveExtends(from, target.service, load, errors, [...chain, key]);
  const local: Service = structuredClone(service);
  delete local.extends;
  return mergeMappings(base, local, `services.${name}`) as Service;
}

/** Sequences whose later value replaces the earlier one instead of adding to it. */
const REPLACED = /^services\.[^.]+\.(command|entrypoint|healthcheck\.test)$/;
/** Sequences of unique resources, keyed as the specification says. */
const UNIQUE: Record<string, (item: unknown) => string> = {
  ports: (item) => portKey(String(item)),
  volumes: (item) => volumeTarget(item),
  secrets: (item) => (isMapping(item) ? String(item.target ?? item.source) : String(item)),
  configs: (item) => (isMapping(item) ? String(item.target ?? item.source) : String(item)),
};
/** Attributes written as a list or a mapping, merged as mappings. */
const AS_MAPPING = new Set([
  'environment',
  'labels',
  'depends_on',
  'networks',
  'extra_hosts',
  'sysctls',
]);

function mergeMappings(base: Json, override: Json, path: string): Json {
  const out: Json = { ...base };
  for (const [key, value] of Object.entries(override)) {
    const at = path ? `${path}.${key}` : key;
    const before = out[key];
    const isServiceAttribute = /^services\.[^.]+$/.test(path);
    if (isServiceAttribute && AS_MAPPING.has(key)) {
      const a = asMapping(key, before);
      const b = asMapping(key, value);
      // A dependency's options merge too (a later file may add `required: false`).
      out[key] =
        key === 'depends_on'
          ? Object.fromEntries(
              [...new Set([...Object.keys(a), ...Object.keys(b)])].map((name) => [
                name,
                { ...mapping(a[name]), ...mapping(b[name]) },
              ]),
            )
          : { ...a, ...b };
    } else if (Array.isArray(before) && Array.isArray(value)) {
      const unique = isServiceAttribute ? UNIQUE[key] : undefined;
      if (REPLACED.test(at)) out[key] = value;
      else if (unique) {
        const byKey = new Map(before.map((item) => [unique(item), item]));
        for (const item of value) byKey.set(unique(item), item);
        out[key] = [...byKey.values()];
      } else out[key] = [...before, ...value.filter((item) => !before.includes(item))];
    } else if (isMapping(before) && isMapping(value)) {
      out[key] = mergeMappings(before, value, at);
    } else {
      out[key] = value;
    }
  }
  return out;
}

function asMapping(key: string, value: unknown): Json {
  if (isMapping(value)) return value;
  if (!Array.isArray(value)) return {};
  const out: Json = {};
  for (const item of value.map(String)) {
    if (key === 'depends_on') out[item] = { condition: 'service_started' };
    else if (key === 'networks') out[item] = null;
    else {
      const eq = item.indexOf(key === 'extra_hosts' ? ':' : '=');
      if (eq < 0) out[item] = null;
      else out[item.slice(0, eq)] = item.slice(eq + 1);
    }
  }
  return out;
}

function normaliseService(service: Service): void {
  for (const key of ['networks', 'depends_on', 'environment'] as const) {
    if (service[key] !== undefined) {
      (service as Json)[key] = asMapping(key, service[key]);
    }
  }
  for (const dependency of Object.values(service.depends_on ?? {})) {
    dependency.condition ??= 'service_started';
  }
}

// --- profiles and consistency ----------------------------------------------

function activeServices(
  services: Record<string, Service>,
  options: ComposeOptions,
  errors: string[],
): Set<string> {
  const profiles = new Set(options.profiles ?? []);
  const enabled = (name: string) => {
    const own = services[name]?.profiles ?? [];
    return own.length === 0 || own.some((p) => profiles.has(p));
  };
  if (!options.services) return new Set(Object.keys(services).filter(enabled));
  const selected = new Set<string>();
  const visit = (name: string) => {
    if (selected.has(name)) return;
    if (!(name in services)) {
      errors.push(`no such service: ${name}`);
      return;
    }
    selected.add(name);
    for (const dependency of Object.keys(services[name]!.depends_on ?? {})) visit(dependency);
  };
  for (const name of options.services) visit(name);
  return selected;
}

/** Named volumes, not bind mounts: `./x`, `/x` and `~/x` sources are host paths. */
function namedVolume(mount: unknown): string | undefined {
  if (isMapping(mount)) return mount.type === 'volume' ? String(mount.source) : undefined;
  const parts = String(mount).split(':');
  if (parts.length < 2) return undefined;
  const source = parts[0]!;
  return /^[./~]/.test(source) ? undefined : source;
}

function consistencyErrors(model: ComposeModel): string[] {
  const errors: string[] = [];
  const containers = new Map<string, string>();
  for (const [name, service] of Object.entries(model.services)) {
    if (service.image === undefined && service.build === undefined) {
      errors.push(`service "${name}" has neither an image nor a build context specified`);
    }
    for (const [dependency, { required }] of Object.entries(service.depends_on ?? {})) {
      if (!(dependency in model.services) && required !== false) {
        errors.push(`service "${name}" depends on undefined service "${dependency}"`);
      }
    }
    for (const network of Object.keys(service.networks ?? {})) {
      if (network !== 'default' && !(network in model.networks)) {
        errors.push(`service "${name}" refers to undefined network ${network}`);
      }
    }
    for (const mount of service.volumes ?? []) {
      const volume = namedVolume(mount);
      if (volume !== undefined && !(volume in model.volumes)) {
        errors.push(`service "${name}" refers to undefined volume ${volume}`);
      }
    }
    if (service.container_name !== undefined) {
      const other = containers.get(service.container_name);
      if (other !== undefined) {
        errors.push(
          `services "${other}" and "${name}" have the same container_name "${service.container_name}"`,
        );
      }
      containers.set(service.container_name, name);
    }
  }
  return errors;
}

// --- small readers -----------------------------------------------------------

function isMapping(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function mapping(value: unknown): Json {
  return isMapping(value) ? value : {};
}

/** A short-syntax port's identity: host ip, published port, target and protocol. */
export function portKey(mapping: string): string {
  const [spec, protocol = 'tcp'] = mapping.split('/');
  const parts = spec!.split(':');
  const target = parts.pop()!;
  const published = parts.pop() ?? '';
  const ip = parts.join(':');
  return `${ip}|${published}|${target}|${protocol}`;
}

function volumeTarget(mount: unknown): string {
  if (isMapping(mount)) return String(mount.target);
  const parts = String(mount).split(':');
  return parts.length >= 2 ? parts[1]! : parts[0]!;
}
