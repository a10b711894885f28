import type { Cluster, Worker } from 'node:cluster';
import type { Logger } from 'pino';
import {
  asWorkerMessage,
  type PrimaryMessage,
  type Question,
  type WorkerMessage,
} from './protocol.js';
import type { ListeningAddress } from '../data-plane.js';
import { withProxyNodeFlags } from '../heap-tuning.js';
import type { SlotState } from '../state/slot-state.js';
import type { AcmeSnapshot } from '../tls/acme-relay.js';

/** What a (re)started worker begins with: the primary's view right now. */
export interface WorkerStart {
  state: SlotState;
  storeKind: 'redis' | 'file';
  tls?: AcmeSnapshot | undefined;
}

export interface WorkerPoolOptions {
  /** node:cluster (passed in so the pool owns no global of its own). */
  cluster: Cluster;
  size: number;
  /** The worker entry script. */
  exec: string;
  logger: Logger;
  start: () => WorkerStart;
  /** From fork until the worker listens; a worker slower than that is killed. */
  startTimeoutMs?: number;
  /** Told each time a worker that died is replaced (the restarts metric). */
  onReplace?: () => void;
  /** Told each time a worker exits, for whatever reason, with its id. */
  onExit?: (workerId: number) => void;
}

/** One worker as /admin/status lists it. */
export interface WorkerView {
  id: number;
  pid: number;
  started_at: string;
  /** Listening on the public port. */
  ready: boolean;
  /** The newest epoch it has confirmed applying. */
  epoch: number;
}

/** A worker's answer to a question, or none when it did not answer in time. */
export interface WorkerAnswer {
  worker: WorkerView;
  answer: Extract<WorkerMessage, { type: 'togather:answer' }> | null;
}

interface Member {
  readonly worker: Worker;
  readonly id: number;
  readonly pid: number;
  readonly startedAt: Date;
  /** Sent its `init`: from then on it gets every state. */
  initialised: boolean;
  ready: boolean;
  epoch: number;
  /** Why it failed to start, as it said before exiting. */
  failure: string | null;
  /** The error code it reported with the failure (EADDRINUSE...). */
  failureCode: string | null;
  startTimer: NodeJS.Timeout | null;
}

interface PendingQuestion {
  readonly waiting: Set<number>;
  readonly answers: Map<number, WorkerAnswer['answer']>;
  finish(): void;
}

interface ConvergeWaiter {
  readonly epoch: number;
  resolve(lagging: number[]): void;
}

/** A worker that dies this soon after its start counts towards the restart backoff. */
const QUICK_EXIT_MS = 10_000;
const MAX_RESTART_DELAY_MS = 30_000;
/** After a stop's timeout, how long workers get to exit before SIGKILL. */
const STOP_GRACE_MS = 5_000;

/**
 * The workers of a `PROXY_WORKERS > 1` proxy, seen from the primary: forks
 * them on the public port (node:cluster), hands each the current slot state,
 * relays every newer state, asks them for their
 * traffic and metrics (request/response with a timeout), replaces a worker
 * that dies (with a backoff when they die young), and stops them all.
 */
export class WorkerPool {
  private readonly members = new Map<number, Member>();
  private readonly questions = new Map<number, PendingQuestion>();
  private readonly waiters = new Set<ConvergeWaiter>();
  private readonly restartTimers = new Set<NodeJS.Timeout>();
  private readonly startTimeoutMs: number;
  private nextQuestion = 1;
  private quickExits = 0;
  private started = false;
  private stopping = false;
  private startup: {
    resolve(address: ListeningAddress): void;
    reject(error: Error): void;
    address: ListeningAddress | null;
  } | null = null;
  private stopped: (() => void) | null = null;

  constructor(private readonly options: WorkerPoolOptions) {
    this.startTimeoutMs = options.startTimeoutMs ?? 20_000;
  }

  get size(): number {
    return this.options.size;
  }

  /**
   * Forks every worker and resolves once all of them listen, with the public
   * address. Rejects with the first worker's start-up failure (a port in
   * use...), after stopping the others.
   */
  start(): Promise<ListeningAddress> {
    if (this.startup !== null || this.started)
      throw new Error('the worker pool is already started');
    // The primary's own node flags (cluster's default), plus the proxy's (heap-tuning.ts).
    this.options.cluster.setupPrimary({
      exec: this.options.exec,
      args: [],
      execArgv: withProxyNodeFlags(process.execArgv, process.env.NODE_OPTIONS),
    });
    return new Promise<ListeningAddress>((resolve, reject) => {
      this.startup = { resolve, reject, address: null };
      for (let i = 0; i < this.options.size; i++) this.fork();
    });
  }

  views(): WorkerView[] {
    return [...this.members.values()].map(view);
  }

  /** Relays a newer slot state to every worker (each answers with the epoch it applies). */
  broadcastState(state: SlotState): void {
    for (const member of this.members.values()) {
      if (member.initialised) send(member, { type: 'togather:state', state });
    }
  }

  /** Relays the primary's ACME certificates and pending tokens. */
  broadcastTls(tls: AcmeSnapshot): void {
    for (const member of this.members.values()) {
      if (member.initialised) send(member, { type: 'togather:tls', tls });
    }
  }

  /**
   * Resolves once every worker applies `epoch` or a newer one, or after
   * `timeoutMs`, with the ids of the workers still behind (empty: converged).
   * Workers still starting count too: they begin from the primary's state.
   */
  converged(epoch: number, timeoutMs: number): Promise<number[]> {
    const lagging = this.lagging(epoch);
    if (lagging.length === 0) return Promise.resolve([]);
    return new Promise<number[]>((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        resolve(this.lagging(epoch));
      }, timeoutMs);
      const waiter: ConvergeWaiter = {
        epoch,
        resolve: (left) => {
          clearTimeout(timer);
          resolve(left);
        },
      };
      this.waiters.add(waiter);
    });
  }

  /** Asks every listening worker; the answers come in worker order, null where none came in time. */
  ask(question: Question, timeoutMs: number): Promise<WorkerAnswer[]> {
    const targets = [...this.members.values()].filter((m) => m.ready && m.worker.isConnected());
    if (targets.length === 0) return Promise.resolve([]);
    const id = this.nextQuestion++;
    return new Promise<WorkerAnswer[]>((resolve) => {
      const pending: PendingQuestion = {
        waiting: new Set(targets.map((m) => m.id)),
        answers: new Map(),
        finish: () => {
          clearTimeout(timer);
          this.questions.delete(id);
          resolve(
            targets.map((m) => ({ worker: view(m), answer: pending.answers.get(m.id) ?? null })),
          );
        },
      };
      const timer = setTimeout(pending.finish, timeoutMs);
      this.questions.set(id, pending);
      for (const member of targets) {
        if (!send(member, { type: 'togather:ask', id, question }))
          pending.waiting.delete(member.id);
      }
      if (pending.waiting.size === 0) pending.finish();
    });
  }

  /**
   * Tells every worker to stop accepting and finish what runs within
   * `timeoutMs`, then waits for them to exit (SIGKILL after a grace period).
   * No worker is replaced from then on.
   */
  stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    for (const timer of this.restartTimers) clearTimeout(timer);
    this.restartTimers.clear();
    if (this.members.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const kill = setTimeout(() => {
        for (const member of this.members.values()) {
          this.options.logger.warn(
            { worker: member.id, worker_pid: member.pid },
            'proxy worker did not stop in time: killing it',
          );
          member.worker.process.kill('SIGKILL');
        }
      }, timeoutMs + STOP_GRACE_MS);
      this.stopped = () => {
        clearTimeout(kill);
        resolve();
      };
      for (const member of this.members.values()) {
        if (!send(member, { type: 'togather:stop', timeoutMs })) {
          member.worker.process.kill('SIGTERM');
        }
      }
    });
  }

  private fork(): void {
    const worker = this.options.cluster.fork();
    const member: Member = {
      worker,
      id: worker.id,
      pid: worker.process.pid ?? -1,
      startedAt: new Date(),
      initialised: false,
      ready: false,
      epoch: -1,
      failure: null,
      failureCode: null,
      startTimer: null,
    };
    this.members.set(member.id, member);
    member.startTimer = setTimeout(() => {
      if (member.ready) return;
      member.failure ??= `not listening within ${this.startTimeoutMs} ms`;
      this.options.logger.warn(
        { worker: member.id, worker_pid: member.pid },
        'proxy worker did not start in time: killing it',
      );
      worker.process.kill('SIGKILL');
    }, this.startTimeoutMs);
    worker.on('message', (message: unknown) => this.onMessage(member, message));
    worker.on('exit', (code: number | null, signal: string | null) =>
      this.onExit(member, code, signal),
    );
    // A send racing the worker's exit fails with EPIPE; the exit handler deals with the worker.
    worker.on('error', (error: Error) =>
      this.options.logger.debug({ worker: member.id, err: error }, 'proxy worker channel error'),
    );
  }

  private onMessage(member: Member, raw: unknown): void {
    const message = asWorkerMessage(raw);
    if (message === null) return;
    switch (message.type) {
      case 'togather:hello': {
        const start = this.options.start();
        member.initialised = true;
        member.epoch = start.state.epoch;
        send(member, {
          type: 'togather:init',
          state: start.state,
          storeKind: start.storeKind,
          ...(start.tls === undefined ? {} : { tls: start.tls }),
        });
        return;
      }
      case 'togather:listening':
        this.onListening(member, {
          address: message.address,
          port: message.port,
          tlsPort: message.tlsPort,
        });
        return;
      case 'togather:failed':
        member.failure = message.message;
        member.failureCode = message.code ?? null;
        return;
      case 'togather:applied':
        if (message.epoch > member.epoch) member.epoch = message.epoch;
        this.checkWaiters();
        return;
      case 'togather:answer': {
        const pending = this.questions.get(message.id);
        if (pending === undefined || !pending.waiting.delete(member.id)) return;
        pending.answers.set(member.id, message);
        if (pending.waiting.size === 0) pending.finish();
        return;
      }
    }
  }

  private onListening(member: Member, address: ListeningAddress): void {
    member.ready = true;
    if (member.startTimer !== null) clearTimeout(member.startTimer);
    this.options.logger.info(
      { worker: member.id, worker_pid: member.pid, port: address.port },
      'proxy worker listening',
    );
    const startup = this.startup;
    if (startup === null) return;
    startup.address ??= address;
    if ([...this.members.values()].every((m) => m.ready)) {
      this.startup = null;
      this.started = true;
      startup.resolve(startup.address);
    }
  }

  private onExit(member: Member, code: number | null, signal: string | null): void {
    this.members.delete(member.id);
    if (member.startTimer !== null) clearTimeout(member.startTimer);
    for (const pending of this.questions.values()) {
      if (pending.waiting.delete(member.id) && pending.waiting.size === 0) pending.finish();
    }
    this.checkWaiters();
    this.options.onExit?.(member.id);
    const fields = { worker: member.id, worker_pid: member.pid, code, signal };

    if (this.stopping) {
      this.options.logger.debug(fields, 'proxy worker stopped');
      if (this.members.size === 0) this.stopped?.();
      return;
    }
    const startup = this.startup;
    if (startup !== null) {
      // A worker that cannot start now will not start on a retry either (port in use...).
      this.startup = null;
      const failure: NodeJS.ErrnoException = new Error(
        member.failure ?? `a worker exited while starting (code ${code}, signal ${signal})`,
      );
      if (member.failureCode !== null) failure.code = member.failureCode;
      void this.stop(0).then(() => startup.reject(failure));
      return;
    }

    const lived = Date.now() - member.startedAt.getTime();
    this.quickExits = lived < QUICK_EXIT_MS ? this.quickExits + 1 : 0;
    const delay =
      this.quickExits === 0 ? 0 : Math.min(MAX_RESTART_DELAY_MS, 250 * 2 ** (this.quickExits - 1));
    this.options.logger.warn(
      { ...fields, lived_ms: lived, failure: member.failure ?? undefined, restart_in_ms: delay },
      'proxy worker exited: starting a replacement',
    );
    this.options.onReplace?.();
    const timer = setTimeout(() => {
      this.restartTimers.delete(timer);
      if (!this.stopping) this.fork();
    }, delay);
    this.restartTimers.add(timer);
  }

  private lagging(epoch: number): number[] {
    return [...this.members.values()]
      .filter((m) => m.initialised && m.epoch < epoch)
      .map((m) => m.id);
  }

  private checkWaiters(): void {
    for (const waiter of this.waiters) {
      if (this.lagging(waiter.epoch).length > 0) continue;
      this.waiters.delete(waiter);
      waiter.resolve([]);
    }
  }
}

function view(member: Member): WorkerView {
  return {
    id: member.id,
    pid: member.pid,
    started_at: member.startedAt.toISOString(),
    ready: member.ready,
    epoch: member.epoch,
  };
}

/** Sends if the channel is open; false when it is not (the worker is going away). */
function send(member: Member, message: PrimaryMessage): boolean {
  if (!member.worker.isConnected()) return false;
  try {
    member.worker.send(message);
    return true;
  } catch {
    return false;
  }
}
