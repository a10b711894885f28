import { randomBytes } from 'node:crypto';
import { appendFile, link, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Slot } from '../../common/slot.js';
import {
  initialState,
  assertValidSuccessor,
  invalidStateReason,
  stateFields,
  type SlotState,
} from './slot-state.js';
import {
  StoreCorruptError,
  StoreUnavailableError,
  type CompareAndSetResult,
  type SlotStore,
} from './store.js';
import { ListenerList } from './listeners.js';
import { parseSwitchRecord, type SwitchRecord } from './switch-record.js';

export interface FileSlotStoreOptions {
  /** STATE_FILE. */
  stateFile: string;
  /** Switch records kept in the history file (default 1000). */
  historyLimit?: number;
  /** Where a failing state listener is logged. */
  logger?: Logger;
}

/** The history file next to a state file: `proxy-state.json` → `proxy-state.history.jsonl`. */
export function historyFileFor(stateFile: string): string {
  const extension = extname(stateFile);
  const stem = basename(stateFile, extension);
  return join(dirname(stateFile), `${stem}.history.jsonl`);
}

/**
 * The slot store of a single proxy (no REDIS_URL): the state is a JSON file
 * replaced atomically (temp file, fsync, rename, fsync of the directory), so
 * a crash leaves the old state or the new one, never half of one. The switch
 * history is a JSON-lines file next to it, capped at `historyLimit` records.
 * The file is always reachable, so `isUp()` is always true; it has one
 * writer, this process, whose memory is the truth between writes.
 */
export class FileSlotStore implements SlotStore {
  readonly kind = 'file' as const;
  readonly location: string;
  readonly historyFile: string;

  private readonly historyLimit: number;
  private state: SlotState | null = null;
  /** Oldest first, at most historyLimit. */
  private records: SwitchRecord[] = [];
  /** Lines in the history file, which may hold up to twice the limit before it is compacted. */
  private historyLines = 0;
  /** Writes run one after another. */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly stateListeners: ListenerList<[SlotState]>;
  private closed = false;

  constructor(options: FileSlotStoreOptions) {
    this.location = resolve(options.stateFile);
    this.historyFile = historyFileFor(this.location);
    this.historyLimit = Math.max(1, Math.trunc(options.historyLimit ?? 1000));
    this.stateListeners = new ListenerList('slot state', options.logger);
  }

  async init(defaultSlot: Slot): Promise<SlotState> {
    if (this.closed) throw new StoreUnavailableError('the store is closed');
    try {
      await mkdir(dirname(this.location), { recursive: true });
    } catch (error) {
      throw unavailable(`cannot create the directory of ${this.location}`, error);
    }
    let content = await this.readStateContent();
    if (content === null) {
      const initial = initialState(defaultSlot);
      // Set-if-absent: a link fails when the name exists, so a state written meanwhile wins.
      content = (await this.createIfAbsent(serialise(initial)))
        ? { state: initial, lastSwitch: null }
        : await this.readStateContent();
      if (content === null)
        throw new StoreUnavailableError(`${this.location} vanished while starting`);
    }
    const state = content.state;
    this.state = state;
    await this.loadHistory();
    if (content.lastSwitch !== null) await this.repairHistory(content.lastSwitch, state);
    return state;
  }

  async read(): Promise<SlotState> {
    const state = await this.readStateFile();
    if (state === null) {
      throw new StoreUnavailableError(`${this.location} does not exist (was it deleted?)`);
    }
    return state;
  }

  /**
   * With `record`, the switch's audit entry goes into the state file with the
   * state (one atomic rename) and is then appended to the history: a crash
   * between the two leaves it in the state file, and the next start appends
   * it, so no committed switch misses from the history.
   */
  async compareAndSet(
    expectedEpoch: number,
    next: SlotState,
    record?: SwitchRecord,
  ): Promise<CompareAndSetResult> {
    assertValidSuccessor(expectedEpoch, next);
    return this.serialised(async () => {
      const current = this.requireState();
      if (current.epoch !== expectedEpoch) return { ok: false, state: current };
      const stored = stateFields(next);
      await this.replaceStateFile(serialise(stored, record));
      this.state = stored;
      this.stateListeners.emit(stored);
      if (record === undefined) return { ok: true, state: stored };
      try {
        await this.appendRecord(record);
        return { ok: true, state: stored, recorded: true };
      } catch {
        // The caller appends it (and reports a failure); the state file keeps it for the next start.
        return { ok: true, state: stored };
      }
    });
  }

  onState(listener: (state: SlotState) => void): void {
    this.stateListeners.add(listener);
  }

  isUp(): boolean {
    return true;
  }

  /** A file has no outage to report. */
  onAvailability(_listener: (up: boolean) => void): void {}

  appendHistory(record: SwitchRecord): Promise<void> {
    return this.serialised(async () => {
      if (this.closed) throw new StoreUnavailableError('the store is closed');
      await this.appendRecord(record);
    });
  }

  async history(limit: number): Promise<SwitchRecord[]> {
    const count = Math.min(Math.max(Math.trunc(limit), 0), this.records.length);
    return this.records.slice(this.records.length - count).reverse();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue.catch(() => undefined);
  }

  private requireState(): SlotState {
    if (this.closed) throw new StoreUnavailableError('the store is closed');
    if (this.state === null) throw new StoreUnavailableError('the store is not initialised');
    return this.state;
  }

  private serialised<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async appendRecord(record: SwitchRecord): Promise<void> {
    const line = JSON.stringify(record) + '\n';
    try {
      await appendFile(this.historyFile, line, { encoding: 'utf8', mode: 0o644 });
    } catch (error) {
      throw unavailable(`cannot append to ${this.historyFile}`, error);
    }
    this.historyLines++;
    this.records.push(record);
    if (this.records.length > this.historyLimit) {
      this.records.splice(0, this.records.length - this.historyLimit);
    }
    if (this.historyLines > 2 * this.historyLimit) await this.compactHistory();
  }

  /** Appends the switch that wrote the state when the history lacks it (a crash between the two writes). */
  private async repairHistory(lastSwitch: SwitchRecord, state: SlotState): Promise<void> {
    if (lastSwitch.result !== 'switched' || lastSwitch.epoch !== state.epoch) return;
    const has = this.records.some((r) => r.result === 'switched' && r.epoch === lastSwitch.epoch);
    // Best effort: the history is an audit aid; a failure here must not stop the proxy.
    if (!has) await this.appendRecord(lastSwitch).catch(() => undefined);
  }

  /** The stored state, null when there is no file; StoreCorruptError when it is unreadable. */
  private async readStateFile(): Promise<SlotState | null> {
    return (await this.readStateContent())?.state ?? null;
  }

  /** The state file's state and the record of the switch that wrote it, if it holds one. */
  private async readStateContent(): Promise<{
    state: SlotState;
    lastSwitch: SwitchRecord | null;
  } | null> {
    let text: string;
    try {
      text = await readFile(this.location, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw unavailable(`cannot read ${this.location}`, error);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw this.corrupt(`it is not JSON (${(error as Error).message})`);
    }
    const reason = invalidStateReason(parsed);
    if (reason) throw this.corrupt(reason);
    const lastSwitch = (parsed as { last_switch?: unknown }).last_switch;
    return {
      state: stateFields(parsed as SlotState),
      lastSwitch: lastSwitch === undefined ? null : (parseSwitchRecord(lastSwitch) ?? null),
    };
  }

  private corrupt(reason: string): StoreCorruptError {
    return new StoreCorruptError(
      `state file ${this.location} is corrupt: ${reason}. ` +
        'Fix it, or move it away to start again from DEFAULT_SLOT.',
    );
  }

  private async createIfAbsent(content: string): Promise<boolean> {
    const temp = await this.writeTemp(content);
    try {
      await link(temp, this.location);
      await syncDirectory(dirname(this.location));
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw unavailable(`cannot create ${this.location}`, error);
    } finally {
      await unlink(temp).catch(() => undefined);
    }
  }

  private async replaceStateFile(content: string): Promise<void> {
    const temp = await this.writeTemp(content);
    try {
      await rename(temp, this.location);
      await syncDirectory(dirname(this.location));
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      throw unavailable(`cannot replace ${this.location}`, error);
    }
  }

  /** Writes and fsyncs a temp file in the target's directory (so rename stays atomic). */
  private async writeTemp(content: string, target = this.location): Promise<string> {
    const temp = join(
      dirname(target),
      `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`,
    );
    try {
      const handle = await open(temp, 'wx', 0o644);
      try {
        await handle.writeFile(content, 'utf8');
        await handle.sync();
      } finally {
        await handle.close();
      }
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      throw unavailable(`cannot write ${temp}`, error);
    }
    return temp;
  }

  /** Loads the newest records; unreadable lines are skipped (the history is an audit aid, not state). */
  private async loadHistory(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.historyFile, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw unavailable(`cannot read ${this.historyFile}`, error);
    }
    const lines = text.split('\n').filter((line) => line.trim() !== '');
    this.historyLines = lines.length;
    const records: SwitchRecord[] = [];
    for (const line of lines) {
      const record = parseLine(line);
      if (record) records.push(record);
    }
    this.records = records.slice(Math.max(0, records.length - this.historyLimit));
  }

  private async compactHistory(): Promise<void> {
    const content = this.records.map((record) => JSON.stringify(record) + '\n').join('');
    const temp = await this.writeTemp(content, this.historyFile);
    try {
      await rename(temp, this.historyFile);
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      throw unavailable(`cannot compact ${this.historyFile}`, error);
    }
    this.historyLines = this.records.length;
  }
}

/** The state file's content: the state, and the record of the switch that wrote it. */
function serialise(state: SlotState, lastSwitch?: SwitchRecord): string {
  const content = lastSwitch
    ? { ...stateFields(state), last_switch: lastSwitch }
    : stateFields(state);
  return JSON.stringify(content, null, 2) + '\n';
}

/** A history file line as a switch record, null when it is not one. */
function parseLine(line: string): SwitchRecord | null {
  try {
    return parseSwitchRecord(JSON.parse(line)) ?? null;
  } catch {
    return null;
  }
}

async function syncDirectory(directory: string): Promise<void> {
  // Makes the rename itself durable; not every file system allows it.
  const handle = await open(directory, 'r').catch(() => null);
  if (handle === null) return;
  try {
    await handle.sync();
  } catch {
    // EINVAL/EISDIR on file systems without directory fsync: the rename is still atomic.
  } finally {
    await handle.close();
  }
}

function unavailable(what: string, error: unknown): StoreUnavailableError {
  return new StoreUnavailableError(
    `${what}: ${error instanceof Error ? error.message : String(error)}`,
  );
}
