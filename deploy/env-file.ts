import { readFileSync, statSync } from 'node:fs';
import { parseEnv } from 'node:util';
import { ConfigError } from '../common/config.js';

export const PLACEHOLDER = 'CHANGE_ME';

export interface EnvFile {
  path: string;
  values: Record<string, string>;
  /** Things the operator should fix but that do not stop a deploy. */
  warnings: string[];
}

export interface EnvFileRules {
  /** Variables that must be set to a non-empty value. */
  required: readonly string[];
  /** Minimum lengths of secrets (the app and the proxy refuse shorter ones at start). */
  minLength?: Readonly<Record<string, number>>;
  /** Pairs that must differ: the proxy's admin key is not the app's API key. */
  distinct?: readonly (readonly [string, string])[];
}

/**
 * Reads and checks the deploy's environment file before anything is touched:
 * present, no CHANGE_ME placeholder left, required variables set. Every
 * problem is reported at once (ConfigError: exit 2); values never appear in
 * messages, only names.
 */
export function readEnvFile(path: string, rules: EnvFileRules): EnvFile {
  let text: string;
  let mode: number;
  try {
    text = readFileSync(path, 'utf8');
    mode = statSync(path).mode;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'not found' : `cannot be read (${code ?? String(error)})`;
    throw new ConfigError([`environment file ${path}: ${why}`]);
  }
  const values: Record<string, string> = {};
  for (const [key, value] of Object.entries(parseEnv(text))) {
    if (value !== undefined) values[key] = value;
  }

  const problems: string[] = [];
  const placeholders = Object.keys(values).filter((key) => values[key]!.includes(PLACEHOLDER));
  if (placeholders.length > 0) {
    problems.push(
      `${path}: ${PLACEHOLDER} left in ${placeholders.join(', ')} (replace each with a real value)`,
    );
  }
  for (const name of rules.required) {
    if (!values[name]) problems.push(`${path}: ${name} is required`);
  }
  for (const [name, min] of Object.entries(rules.minLength ?? {})) {
    const value = values[name];
    if (value && !placeholders.includes(name) && value.length < min) {
      problems.push(`${path}: ${name} must be at least ${min} characters`);
    }
  }
  for (const [a, b] of rules.distinct ?? []) {
    const placeholder = placeholders.includes(a) || placeholders.includes(b);
    if (values[a] && values[a] === values[b] && !placeholder) {
      problems.push(`${path}: ${a} and ${b} must be different secrets`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const warnings: string[] = [];
  if ((mode & 0o077) !== 0) {
    warnings.push(
      `${path} is readable by other users (mode ${(mode & 0o777).toString(8)}); chmod 600 it`,
    );
  }
  return { path, values, warnings };
}
