import type { Logger } from 'pino';
import type { Slot } from '../../common/slot.js';
import type { SlotState } from '../state/slot-state.js';
import { ListenerList } from '../state/listeners.js';
import { StoreUnavailableError, type SlotStateSource } from '../state/store.js';

export interface RelayedSlotStateOptions {
  /** Where a failing listener is logged. */
  logger?: Logger;
  /** How long init() waits for the primary's `init` (default 10 s). */
  initTimeoutMs?: number;
}

/**
 * A worker's slot state source: the primary owns the store and relays its
 * states over IPC; this hands them to the worker's data plane as a store
 * would. States that arrive before the data plane exists are kept (the
 * newest wins), so none is lost while the worker starts.
 *
 * The store's availability is not relayed: a worker has no store, and
 * togather_proxy_store_up is the primary's (aggregated `first`, see
 * ProxyMetrics), so a worker's own copy of that gauge is never shown.
 */
export class RelayedSlotState implements SlotStateSource {
  private latest: SlotState | null = null;
  private storeKind: 'redis' | 'file' = 'file';
  private readonly stateListeners: ListenerList<[SlotState]>;
  private readonly initialised: Promise<SlotState>;
  private markInitialised!: (state: SlotState) => void;
  private timer: NodeJS.Timeout | null = null;

  constructor(options: RelayedSlotStateOptions = {}) {
    const initTimeoutMs = options.initTimeoutMs ?? 10_000;
    this.stateListeners = new ListenerList('slot state', options.logger);
    this.initialised = new Promise<SlotState>((resolve, reject) => {
      this.markInitialised = resolve;
      this.timer = setTimeout(
        () =>
          reject(
            new StoreUnavailableError(`no slot state from the primary within ${initTimeoutMs} ms`),
          ),
        initTimeoutMs,
      );
    });
    // Nobody may be waiting yet; the rejection is seen by init().
    this.initialised.catch(() => undefined);
  }

  get kind(): 'redis' | 'file' {
    return this.storeKind;
  }

  /** The newest epoch relayed so far (-1 before the first state). */
  get epoch(): number {
    return this.latest?.epoch ?? -1;
  }

  /** The primary's `init`: the state this worker starts from. */
  start(state: SlotState, storeKind: 'redis' | 'file'): void {
    this.storeKind = storeKind;
    this.relay(state);
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.markInitialised(this.latest ?? state);
  }

  /** A state relayed by the primary; older ones are ignored here and by the registry. */
  relay(state: SlotState): void {
    if (this.latest !== null && state.epoch <= this.latest.epoch) return;
    this.latest = state;
    this.stateListeners.emit(state);
  }

  /** Resolves with the newest state once the primary has sent its `init`. */
  async init(_defaultSlot: Slot): Promise<SlotState> {
    const first = await this.initialised;
    return this.latest ?? first;
  }

  onState(listener: (state: SlotState) => void): void {
    this.stateListeners.add(listener);
  }
}
