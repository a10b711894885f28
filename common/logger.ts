import { pino, type Logger, type LoggerOptions } from 'pino';
import pinoPretty from 'pino-pretty';

export type LogFormat = 'json' | 'pretty';

export interface LoggerSettings {
  level: string;
  format?: LogFormat;
  name?: string;
  /** Extra fields on every line (slot, version...). */
  base?: Record<string, unknown>;
  /** Where lines go; defaults to stdout. Tests pass a stream to read them. */
  destination?: NodeJS.WritableStream;
}

/** Paths whose values never reach a log line, whatever logs them. */
export const REDACT_PATHS = [
  'password',
  '*.password',
  'secret',
  '*.secret',
  'token',
  '*.token',
  'apiKey',
  '*.apiKey',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'JWT_SECRET',
  'ADMIN_API_KEY',
  'ADMIN_PASSWORD',
  'DATABASE_URL',
  '*.JWT_SECRET',
  '*.ADMIN_API_KEY',
  '*.ADMIN_PASSWORD',
  '*.DATABASE_URL',
];

export function createLogger(settings: LoggerSettings): Logger {
  const options: LoggerOptions = {
    level: settings.level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { pid: process.pid, ...(settings.name ? { name: settings.name } : {}), ...settings.base },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (settings.format === 'pretty') {
    // Formatted in-process and written at once, like the JSON lines: to the
    // same destination (stderr for the short commands, whose stdout is their
    // answer), in order, and none lost when the process exits right after.
    const format = pinoPretty.prettyFactory({ colorize: false });
    const destination = settings.destination ?? process.stdout;
    return pino(options, { write: (line: string) => destination.write(format(line)) });
  }
  return settings.destination ? pino(options, settings.destination) : pino(options);
}

/** Query parameters of connection URLs that carry secrets (`?password=` works in pg and ioredis). */
const SECRET_PARAM = /pass|secret|token/i;

/** Replaces the password of a connection URL, in its user part or its query, for logs and status pages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    for (const name of [...parsed.searchParams.keys()]) {
      if (SECRET_PARAM.test(name)) parsed.searchParams.set(name, '***');
    }
    return parsed.toString();
  } catch {
    return '[unparseable url]';
  }
}

/**
 * A slot URL (or a health URL built on one) as status pages, answers and logs
 * show it: the password and the value of every query parameter hidden, since
 * a slot's query can carry a token under any name. A URL with neither is
 * returned as written (`http://blue:8080` does not become `http://blue:8080/`).
 */
export function redactSlotUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return '[unparseable url]';
  }
  if (parsed.password === '' && parsed.search === '') return url;
  if (parsed.password !== '') parsed.password = '***';
  for (const name of new Set(parsed.searchParams.keys())) parsed.searchParams.set(name, '***');
  return parsed.toString();
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
