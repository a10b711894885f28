import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseEnv } from 'node:util';
import { UsageError, usageErrorOf } from '../../cli/errors.js';
import {
  DURATION_LIMIT,
  durationProblem,
  MAX_DURATION_MS,
  parseDuration,
} from '../../common/duration.js';
import type { Slot } from '../../common/slot.js';

export type RunnerKind = 'compose' | 'local';

/** Default environment files: the compose stack's, and the one `togather dev` writes. */
export const DEFAULT_ENV_FILE: Record<RunnerKind, string> = {
  compose: 'deploy/docker/.env',
  local: '.togather/dev/deploy.env',
};

/** Variables of the env file meant for `togather deploy`, not for the app. */
export const DEPLOY_ONLY_VARIABLES = [
  'PROXY_ADMIN_API_KEY',
  'ADMIN_URL',
  'PROXY_URL',
  'BLUE_PORT',
  'GREEN_PORT',
  'BLUE_METRICS_PORT',
  'GREEN_METRICS_PORT',
  'DEPLOY_STATE_DIR',
  'DEPLOY_SKIP_SNAPSHOT',
  'TOGATHER_BLUE_IMAGE',
  'TOGATHER_GREEN_IMAGE',
] as const;

/**
 * Looks a setting up: the process environment first (an operator's override),
 * then the env file, then the default.
 */
export function lookup(fileValues: Record<string, string>, env: NodeJS.ProcessEnv = process.env) {
  return (name: string, fallback?: string): string | undefined => {
    const fromEnv = env[name];
    if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
    const fromFile = fileValues[name];
    if (fromFile !== undefined && fromFile !== '') return fromFile;
    return fallback;
  };
}

/** Reads an env file without judging it (status and history only need a few locations). */
export function readEnvValuesIfPresent(path: string): Record<string, string> {
  if (!existsSync(path)) return {};
  const values: Record<string, string> = {};
  for (const [k, v] of Object.entries(parseEnv(readFileSync(path, 'utf8')))) {
    if (v !== undefined) values[k] = v;
  }
  return values;
}

export interface Locations {
  adminUrl: string;
  proxyUrl: string;
  ports: Record<Slot, number>;
  /**
   * Each slot's METRICS_PORT for the local runner, whose slots share one
   * machine (0: any free port, which the slot logs); compose slots each have
   * their own container and keep the image's 9464.
   */
  metricsPorts: Record<Slot, number>;
  redisUrl: string | undefined;
  redisKeyPrefix: string;
  stateDir: string;
}

/** Where the proxy, the slots, Redis and the state directory are, for a runner. */
export function locations(runner: RunnerKind, get: ReturnType<typeof lookup>): Locations {
  const problems: string[] = [];
  const port = (name: string, fallback: string, min = 1): number => {
    const text = get(name, fallback)!;
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || value > 65_535) {
      problems.push(`${name}: "${text}" is not a port`);
    }
    return value;
  };
  const url = (name: string, fallback: string): string => {
    const text = get(name, fallback)!;
    if (!/^https?:\/\/[^/]+/.test(text) || !URL.canParse(text)) {
      problems.push(`${name}: "${text}" is not an http(s) URL`);
    }
    return text.replace(/\/+$/, '');
  };
  const publicPort = get('PROXY_PUBLIC_PORT', runner === 'compose' ? '80' : '8080');
  const result: Locations = {
    adminUrl: url('ADMIN_URL', 'http://127.0.0.1:9080'),
    proxyUrl: url('PROXY_URL', `http://127.0.0.1:${publicPort}`),
    ports: { blue: port('BLUE_PORT', '8081'), green: port('GREEN_PORT', '8082') },
    metricsPorts: {
      blue: port('BLUE_METRICS_PORT', '0', 0),
      green: port('GREEN_METRICS_PORT', '0', 0),
    },
    redisUrl: get('REDIS_URL'),
    redisKeyPrefix: get('REDIS_KEY_PREFIX', 'togather:')!,
    stateDir: get('DEPLOY_STATE_DIR', '.togather')!,
  };
  if (result.redisUrl !== undefined && !/^rediss?:\/\//.test(result.redisUrl)) {
    problems.push('REDIS_URL: must be a redis:// or rediss:// URL');
  }
  if (problems.length > 0) throw new UsageError(problems.join('; '));
  return result;
}

/** Files of the state directory. */
export function statePaths(stateDir: string) {
  return {
    lock: join(stateDir, 'deploy.lock'),
    history: join(stateDir, 'deployments.json'),
    slots: join(stateDir, 'slots.json'),
    logs: join(stateDir, 'logs'),
  };
}

/**
 * Reads the values of flags, collecting every problem so that a command
 * reports all its bad flags at once (exit 2) instead of the first one.
 * A bad value reads as NaN: `check()` throws before it can be used.
 */
export class FlagReader {
  private readonly problems: string[] = [];

  problem(text: string): void {
    this.problems.push(text);
  }

  /** Milliseconds, worded like every other duration: see common/duration. */
  duration(flag: string, text: string, minMs = 0): number {
    const problem = durationProblem(text);
    if (problem) return this.bad(`${flag}: ${problem}`);
    const ms = parseDuration(text)!;
    if (ms < minMs) return this.bad(`${flag}: "${text}" is too short (at least ${minMs} ms)`);
    return ms;
  }

  integer(flag: string, text: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
    const value = Number(text);
    if (!/^\d+$/.test(text.trim()) || value < min || value > max) {
      return this.bad(`${flag}: "${text}" is not a whole number from ${min} to ${max}`);
    }
    return value;
  }

  ratio(flag: string, text: string): number {
    const value = Number(text);
    if (text.trim() === '' || !Number.isFinite(value) || value < 0 || value > 1) {
      return this.bad(`${flag}: "${text}" is not a ratio from 0 to 1`);
    }
    return value;
  }

  /** A number of seconds, as long as a duration may be (it ends up as one). */
  seconds(flag: string, text: string): number {
    const value = Number(text);
    if (text.trim() === '' || !Number.isFinite(value) || value < 0) {
      return this.bad(`${flag}: "${text}" is not a number of seconds`);
    }
    if (value * 1000 > MAX_DURATION_MS) {
      return this.bad(`${flag}: "${text}" is too long (${DURATION_LIMIT})`);
    }
    return value;
  }

  /** Throws the usage error naming every problem found, if any. */
  check(): void {
    if (this.problems.length > 0) throw usageErrorOf(this.problems);
  }

  private bad(problem: string): number {
    this.problems.push(problem);
    return Number.NaN;
  }
}
