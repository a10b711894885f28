import type { Logger } from 'pino';
import { describeProbe, type HealthGateResult } from './health-gate.js';
import type { SlotRegistry } from '../state/slot-registry.js';
import type { Slot } from '../../common/slot.js';
import type { SlotState } from '../state/slot-state.js';
import {
  StoreCorruptError,
  StoreOutcomeUnknownError,
  StoreUnavailableError,
  type SlotStore,
} from '../state/store.js';
import type { SwitchRecord, SwitchResult } from '../state/switch-record.js';

/** Why a switch did not happen; the admin API maps each to its status. */
export type SwitchRefusal =
  'store_unavailable' | 'epoch_conflict' | 'target_unhealthy' | 'no_previous_slot';

export type SwitchOutcome =
  | { ok: true; changed: boolean; state: SlotState }
  | {
      ok: false;
      error: SwitchRefusal;
      message: string;
      /** The state the refusal was decided on, when it could be read. */
      state?: SlotState;
      /** What the health gate saw, for `target_unhealthy`. */
      health?: HealthGateResult;
    };

export interface SwitchRequest {
  /** Skip the health gate. */
  force?: boolean;
  /** Switch only if the stored epoch is still this one. */
  expectEpoch?: number;
  /** Who asked: X-Actor of the admin request, else `api`. */
  actor: string;
}

/** The part of togather_proxy_switches_total the service counts on. */
export interface SwitchCounter {
  inc(labels: { result: SwitchResult }): void;
}

export interface SwitchServiceOptions {
  store: SlotStore;
  registry: SlotRegistry;
  /** Health-gates a slot (GET <slot url><HEALTH_PATH>). */
  gate: (slot: Slot) => Promise<HealthGateResult>;
  switches: SwitchCounter;
  logger: Logger;
  /**
   * Without expect_epoch, how many times a compare-and-set lost to another
   * switch is retried on the state that won before answering epoch_conflict.
   */
  maxRaceRetries?: number;
  now?: () => Date;
}

/**
 * Moves traffic between slots: reads the fleet's state from the store,
 * health-gates the target, writes the next epoch with a compare-and-set (so
 * exactly one switch wins per epoch across every proxy), applies it to this
 * proxy at once, and records every attempt in the audit history.
 */
export class SwitchService {
  private readonly maxRaceRetries: number;
  private readonly now: () => Date;

  constructor(private readonly options: SwitchServiceOptions) {
    this.maxRaceRetries = options.maxRaceRetries ?? 3;
    this.now = options.now ?? (() => new Date());
  }

  async switch(target: Slot, request: SwitchRequest): Promise<SwitchOutcome> {
    const read = await this.readState(target, request);
    if (!read.ok) return read.outcome;
    return this.switchFrom(read.state, target, request);
  }

  /** Switches back to the previous slot, with the same gate and answers as a switch. */
  async rollback(request: SwitchRequest): Promise<SwitchOutcome> {
    const read = await this.readState(this.options.registry.current.previous, request);
    if (!read.ok) return read.outcome;
    const current = read.state;
    if (current.previous === null) {
      const message = `there is no previous slot to roll back to (${current.active} has been active since start)`;
      return this.refuse(current, current.active, request, 'no_previous_slot', 'refused', message);
    }
    return this.switchFrom(current, current.previous, request);
  }

  private async switchFrom(
    read: SlotState,
    target: Slot,
    request: SwitchRequest,
  ): Promise<SwitchOutcome> {
    let current = read;
    if (request.expectEpoch !== undefined && request.expectEpoch !== current.epoch) {
      const message = `expected epoch ${request.expectEpoch} but the state is at epoch ${current.epoch}`;
      return this.refuse(current, target, request, 'epoch_conflict', 'conflict', message);
    }
    if (current.active === target) return this.unchanged(current, target, request);

    if (!request.force) {
      const health = await this.options.gate(target);
      if (!health.healthy) {
        const last = health.attempts[health.attempts.length - 1];
        const seen = last ? describeProbe(last) : 'no probe made';
        const tries = health.attempts.length;
        const message = `${target} is unhealthy: ${seen} (${tries} ${tries === 1 ? 'try' : 'tries'}); use force to switch anyway`;
        return this.refuse(
          current,
          target,
          request,
          'target_unhealthy',
          'refused',
          message,
          health,
        );
      }
    }

    for (let retry = 0; ; retry++) {
      const next: SlotState = {
        active: target,
        previous: current.active,
        epoch: current.epoch + 1,
        switched_at: this.now().toISOString(),
        actor: request.actor,
      };
      // The audit entry goes with the write: a store that can append it atomically does.
      const entry = this.entry(request, current.active, target, next.epoch, 'switched');
      let written;
      try {
        written = await this.options.store.compareAndSet(current.epoch, next, entry);
      } catch (error) {
        if (error instanceof StoreUnavailableError || error instanceof StoreCorruptError) {
          return this.unavailable(target, request, error);
        }
        throw error;
      }
      if (written.ok) {
        this.options.registry.apply(written.state);
        if (written.recorded === true) this.options.switches.inc({ result: 'switched' });
        else await this.record(entry);
        // The data plane logs the switch itself (with its drain result) when it applies it.
        this.options.logger.debug(
          { actor: request.actor, from: current.active, to: target, epoch: written.state.epoch },
          'switch written to the store',
        );
        return { ok: true, changed: true, state: written.state };
      }

      // Another switch won this epoch: `written.state` is the state that won.
      const lost = current.epoch;
      current = written.state;
      this.options.registry.apply(current);
      if (request.expectEpoch !== undefined) {
        const message = `expected epoch ${request.expectEpoch} but another switch moved the state to epoch ${current.epoch}`;
        return this.refuse(current, target, request, 'epoch_conflict', 'conflict', message);
      }
      if (current.active === target) return this.unchanged(current, target, request);
      if (retry >= this.maxRaceRetries) {
        const message = `lost the race for epoch ${lost + 1} to other switches ${retry + 1} times; the state is at epoch ${current.epoch}`;
        return this.refuse(current, target, request, 'epoch_conflict', 'conflict', message);
      }
    }
  }

  /** The fleet's state as the store holds it now (this proxy may lag a notification). */
  private async readState(
    target: Slot | null,
    request: SwitchRequest,
  ): Promise<{ ok: true; state: SlotState } | { ok: false; outcome: SwitchOutcome }> {
    try {
      const state = await this.options.store.read();
      this.options.registry.apply(state);
      return { ok: true, state };
    } catch (error) {
      if (!(error instanceof StoreUnavailableError || error instanceof StoreCorruptError))
        throw error;
      const to = target ?? this.options.registry.current.active;
      return { ok: false, outcome: await this.unavailable(to, request, error) };
    }
  }

  private async unchanged(
    current: SlotState,
    target: Slot,
    request: SwitchRequest,
  ): Promise<SwitchOutcome> {
    await this.record(this.entry(request, current.active, target, current.epoch, 'unchanged'));
    return { ok: true, changed: false, state: current };
  }

  private async unavailable(
    target: Slot,
    request: SwitchRequest,
    error: StoreUnavailableError | StoreCorruptError,
  ): Promise<SwitchOutcome> {
    const known = this.options.registry.current;
    const message =
      error instanceof StoreOutcomeUnknownError
        ? `no answer from the slot store (${error.message}): the switch to ${target} may have been written, and then every proxy moves to it within seconds, or not, and then traffic stays on ${known.active}; it cannot be written any later. See /admin/status`
        : `the slot store is unavailable (${error.message}); traffic stays on ${known.active}`;
    await this.record(
      this.entry(request, known.active, target, known.epoch, 'unavailable', message),
    );
    return { ok: false, error: 'store_unavailable', message, state: known };
  }

  private async refuse(
    current: SlotState,
    target: Slot,
    request: SwitchRequest,
    error: SwitchRefusal,
    result: SwitchResult,
    message: string,
    health?: HealthGateResult,
  ): Promise<SwitchOutcome> {
    await this.record(this.entry(request, current.active, target, current.epoch, result, message));
    return { ok: false, error, message, state: current, ...(health ? { health } : {}) };
  }

  private entry(
    request: SwitchRequest,
    from: Slot | null,
    to: Slot,
    epoch: number,
    result: SwitchResult,
    reason?: string,
  ): SwitchRecord {
    const why = request.force && result === 'switched' ? 'forced: health gate skipped' : reason;
    return {
      time: this.now().toISOString(),
      actor: request.actor,
      from,
      to,
      epoch,
      result,
      ...(why ? { reason: why } : {}),
    };
  }

  /** Counts the attempt and appends it to the audit history; a lost entry is logged, never fatal. */
  private async record(entry: SwitchRecord): Promise<void> {
    const { actor, from, to, epoch, result, reason } = entry;
    this.options.switches.inc({ result });
    if (result === 'unchanged') {
      this.options.logger.info({ actor, to, epoch }, 'switch: slot already active');
    } else if (result !== 'switched') {
      this.options.logger.warn({ actor, from, to, epoch, result, reason }, 'switch not done');
    }
    // The history lives in the store: with the store down the log line above is the record.
    if (result === 'unavailable') return;
    try {
      await this.options.store.appendHistory(entry);
    } catch (error) {
      this.options.logger.warn(
        { err: error, entry },
        'switch attempt not written to the audit history',
      );
    }
  }
}
