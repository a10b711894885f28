import type { Registry } from 'prom-client';
import type { Slot } from '../../common/slot.js';
import type { SlotTraffic } from '../edge/edge-proxy.js';
import { invalidStateReason, type SlotState } from '../state/slot-state.js';
import { isAcmeSnapshot, type AcmeSnapshot } from '../tls/acme-relay.js';

/**
 * The messages between the primary of a `PROXY_WORKERS > 1` proxy and its
 * workers, over the cluster IPC channel (JSON). The primary owns the store
 * and the admin listener; each worker owns one copy of the data plane and
 * applies the slot states the primary relays.
 */

/**
 * A worker's answer to `traffic`: its data plane, as /admin/status shows it.
 * The slot URLs are the primary's configuration: they do not cross the channel.
 */
export interface WorkerTraffic {
  pid: number;
  epoch: number;
  active: Slot;
  slots: Record<Slot, Omit<SlotTraffic, 'url'>>;
}

/** prom-client's registry.getMetricsAsJSON(), as it crosses the channel. */
export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

export type Question = 'traffic' | 'metrics';

export type PrimaryMessage =
  /** The answer to `hello`: where the worker starts from. */
  | {
      type: 'togather:init';
      state: SlotState;
      storeKind: 'redis' | 'file';
      /** With ACME_DOMAINS: the primary's certificates and pending tokens. */
      tls?: AcmeSnapshot;
    }
  /** The primary's ACME certificates or pending tokens changed. */
  | { type: 'togather:tls'; tls: AcmeSnapshot }
  /** A newer slot state to apply (answered with `applied`). */
  | { type: 'togather:state'; state: SlotState }
  | { type: 'togather:ask'; id: number; question: Question }
  /** Stop accepting, finish what runs (up to timeoutMs), exit 0. */
  | { type: 'togather:stop'; timeoutMs: number };

export type WorkerMessage =
  /** The worker listens for messages: the primary answers with `init`. */
  | { type: 'togather:hello' }
  | { type: 'togather:listening'; port: number; address: string; tlsPort?: number }
  /** Start-up failed (the worker exits 1 next). */
  | { type: 'togather:failed'; message: string; code?: string }
  /** The epoch the worker applies after a `state` message. */
  | { type: 'togather:applied'; epoch: number }
  | { type: 'togather:answer'; id: number; traffic?: WorkerTraffic; metrics?: MetricsJson };

const PRIMARY_TYPES = new Set([
  'togather:init',
  'togather:state',
  'togather:ask',
  'togather:stop',
  'togather:tls',
]);
const WORKER_TYPES = new Set([
  'togather:hello',
  'togather:listening',
  'togather:failed',
  'togather:applied',
  'togather:answer',
]);

function typeOf(message: unknown): string | undefined {
  if (typeof message !== 'object' || message === null) return undefined;
  const type = (message as { type?: unknown }).type;
  return typeof type === 'string' ? type : undefined;
}

/**
 * A message from the primary, or null for anything else on the channel
 * (Node's own cluster messages, other libraries'). States are checked like
 * states read from a store: the hot path must never see a malformed one.
 */
export function asPrimaryMessage(message: unknown): PrimaryMessage | null {
  const type = typeOf(message);
  if (type === undefined || !PRIMARY_TYPES.has(type)) return null;
  const candidate = message as PrimaryMessage;
  if (candidate.type === 'togather:init' || candidate.type === 'togather:state') {
    if (invalidStateReason(candidate.state) !== undefined) return null;
  }
  if (candidate.type === 'togather:init' && candidate.tls !== undefined) {
    if (!isAcmeSnapshot(candidate.tls)) return null;
  }
  if (candidate.type === 'togather:tls' && !isAcmeSnapshot(candidate.tls)) return null;
  return candidate;
}

/** A message from a worker, or null for anything else on the channel. */
export function asWorkerMessage(message: unknown): WorkerMessage | null {
  const type = typeOf(message);
  return type !== undefined && WORKER_TYPES.has(type) ? (message as WorkerMessage) : null;
}
