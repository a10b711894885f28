import { userInfo } from 'node:os';
import { z } from 'zod';
import { parseConfig, withoutEmpty } from '../../common/config.js';
import { CommandFailed } from '../../cli/errors.js';
import {
  AdminApiError,
  AdminUnreachableError,
  createAdminClient,
  type AdminClient,
} from './client.js';
import type { Slot } from '../../common/slot.js';

/** What the admin commands (switch, rollback, status) read from the environment. */
const adminClientEnvSchema = z.object({
  ADMIN_URL: z
    .string()
    .default('http://127.0.0.1:9080')
    .refine((v) => /^https?:\/\/[^/]+/.test(v) && URL.canParse(v), 'must be an http(s) URL'),
  ADMIN_API_KEY: z.string({ error: 'is required (the proxy admin API key)' }).min(1),
});

export type AdminClientConfig = z.output<typeof adminClientEnvSchema>;

export function loadAdminClientConfig(env: NodeJS.ProcessEnv = process.env): AdminClientConfig {
  return parseConfig(adminClientEnvSchema, withoutEmpty(env));
}

/** Names the operator in the audit history: `cli:<user>`. */
function cliActor(): string {
  try {
    const name = userInfo().username.replace(/[^\x21-\x7e]/g, '');
    return name ? `cli:${name}`.slice(0, 128) : 'cli';
  } catch {
    return 'cli';
  }
}

export function adminClientFrom(config: AdminClientConfig): AdminClient {
  return createAdminClient({
    url: config.ADMIN_URL,
    apiKey: config.ADMIN_API_KEY,
    actor: cliActor(),
  });
}

/** `togather switch <slot> [--force]`: one line saying what happened. */
export async function runSwitch(
  client: AdminClient,
  slot: Slot,
  options: { force?: boolean; expectEpoch?: number },
): Promise<string> {
  const answer = await refusalsAsFailures('switch', () => client.switch(slot, options));
  if (!answer.changed)
    return `${slot} is already active (epoch ${answer.epoch}); nothing changed\n`;
  const forced = options.force ? ' (forced, health gate skipped)' : '';
  return `switched ${answer.previous ?? '-'} -> ${answer.active} (epoch ${answer.epoch})${forced}\n`;
}

/** `togather rollback`: back to the previous slot. */
export async function runRollback(
  client: AdminClient,
  options: { force?: boolean },
): Promise<string> {
  const answer = await refusalsAsFailures('rollback', () => client.rollback(options));
  if (!answer.changed)
    return `${answer.active} is already active (epoch ${answer.epoch}); nothing changed\n`;
  return `rolled back ${answer.previous ?? '-'} -> ${answer.active} (epoch ${answer.epoch})\n`;
}

/** `togather status [--json]`. */
export async function runStatus(client: AdminClient, json: boolean): Promise<string> {
  const status = await refusalsAsFailures('status', () => client.status());
  return json ? JSON.stringify(status) + '\n' : formatStatus(status);
}

async function refusalsAsFailures<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof AdminApiError) {
      throw new CommandFailed(`${what} refused (${error.status} ${error.code}): ${error.message}`);
    }
    if (error instanceof AdminUnreachableError)
      throw new CommandFailed(`${what} failed: ${error.message}`);
    throw error;
  }
}

/** A readable page of /admin/status; tolerant of fields it does not know. */
export function formatStatus(status: Record<string, unknown>): string {
  const text = (v: unknown) => (v === null || v === undefined ? '-' : String(v));
  const lines: string[] = [];
  lines.push(
    `active:    ${text(status.active)} (epoch ${text(status.epoch)}, since ${text(status.switched_at)}, by ${text(status.actor)})`,
  );
  lines.push(`previous:  ${text(status.previous)}`);
  const store = (status.store ?? {}) as Record<string, unknown>;
  const connected = store.connected === true ? 'connected' : 'DISCONNECTED: switches refused';
  lines.push(`store:     ${text(store.kind)} ${text(store.location)} (${connected})`);
  const slots = (status.slots ?? {}) as Record<string, Record<string, unknown>>;
  lines.push('slots:');
  for (const [name, slot] of Object.entries(slots)) {
    const health =
      slot.healthy === true ? 'healthy' : slot.healthy === false ? 'UNHEALTHY' : 'unknown';
    const parts = [
      `  ${name.padEnd(6)}`,
      `${text(slot.url)}`,
      health,
      `version ${text(slot.version)}`,
      `inflight ${text(slot.inflight)}`,
      `websockets ${text(slot.websockets)}`,
    ];
    if (name === status.active) parts.push('[active]');
    if (slot.draining === true) parts.push('[draining]');
    lines.push(parts.join('  '));
    if (slot.healthy === false && slot.health_error)
      lines.push(`          ${text(slot.health_error)}`);
  }
  return lines.join('\n') + '\n';
}
