import { randomUUID } from 'node:crypto';
import { AdminApiError, type AdminClient, type SwitchAnswer } from '../../proxy/admin/client.js';
import { isSlot, otherSlot, type Slot } from '../../common/slot.js';
import { callWithRetries, retryNote, RetriesEnded, type RetryPolicy } from './admin-retry.js';
import { probe, waitHealthyWhileRunning } from './app-probe.js';
import type {
  DeploymentRecord,
  DeploymentStore,
  StepRecord,
} from '../records/deployment-record.js';
import type { DeployReporter } from './deploy-output.js';
import type { DeployLock, HeldLock } from '../locks/lock.js';
import type { StepName } from './plan.js';
import { tail, type SlotRunner } from '../runners/runner.js';
import { verifyAfterSwitch } from './verify.js';

export interface DeployOptions {
  version: string;
  /** Where `version` comes from, for the health step's message: `--version`, a build-info.json. */
  versionSource: string;
  gitCommit: string;
  actor: string;
  /** Why the snapshot is skipped (the flag, or the env file), or undefined to take one. */
  skipSnapshot: string | undefined;
  skipMigrations: boolean;
  stopOld: boolean;
  healthRetries: number;
  healthIntervalMs: number;
  verifyMs: number;
  verifyIntervalMs: number;
  maxErrorRatio: number;
  proxyUrl: string;
  /** Retries of the switch and rollback calls the proxy answers 429 or 503. */
  adminRetry: RetryPolicy;
  /** The env-file check, done before the deploy proper; shown as its first step. */
  validation: StepRecord;
}

export interface DeployDeps {
  admin: AdminClient;
  lock: DeployLock;
  store: DeploymentStore;
  runner: SlotRunner;
  reporter: DeployReporter;
  metrics: () => Promise<string>;
  /** Aborted on SIGINT/SIGTERM: the running step fails and a switched deploy rolls back. */
  signal: AbortSignal;
}

/** The least time a restored previous version gets to be healthy again. */
const RESTORE_WAIT_MS = 60_000;

/** A step failed: the deploy stops (and rolls back if traffic had moved). */
class StepFailed extends Error {
  override name = 'StepFailed';
}

/**
 * The blue-green rollout: lock, find the idle slot, snapshot, migrate, start
 * the new version there, wait for it, switch (health-gated, compare-and-set
 * on the epoch read), verify through the proxy, roll back on failure. Returns
 * the record; never leaves the lock held.
 */
export async function runDeploy(
  options: DeployOptions,
  deps: DeployDeps,
): Promise<DeploymentRecord> {
  const { admin, lock, store, runner, reporter } = deps;
  const started = Date.now();
  const record: DeploymentRecord = {
    id: `${new Date(started)
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d+Z$/, 'Z')}-${randomUUID().slice(0, 8)}`,
    version: options.version,
    git_commit: options.gitCommit,
    artifact: runner.artifact,
    runner: runner.kind,
    from_slot: null,
    to_slot: null,
    started_at: new Date(started).toISOString(),
    finished_at: null,
    duration_ms: null,
    result: 'in_progress',
    reason: null,
    rollback_reason: null,
    actor: options.actor,
    steps: [options.validation],
  };

  let held: HeldLock | undefined;
  // Aborted, with the reason, when the deploy must stop: a signal or the lost lock.
  const halt = new AbortController();
  const halted = new Promise<never>((_, reject) => {
    halt.signal.addEventListener('abort', () => reject(halt.signal.reason as Error), {
      once: true,
    });
  });
  halted.catch(() => {});
  const onSignal = () => halt.abort(new StepFailed('interrupted by a signal'));
  if (deps.signal.aborted) onSignal();
  else deps.signal.addEventListener('abort', onSignal, { once: true });

  /** Adds a finished step to the record and tells the reporter. */
  function recordStep(
    name: StepName,
    at: number,
    status: StepRecord['status'],
    detail: string,
  ): void {
    const entry: StepRecord = {
      name,
      status,
      started_at: new Date(at).toISOString(),
      duration_ms: status === 'skipped' ? 0 : Date.now() - at,
      detail,
    };
    record.steps.push(entry);
    reporter.stepFinished(entry);
  }

  /**
   * Runs one step, timing and recording it; a thrown error fails the deploy
   * with its message. A step ends at once when the deploy halts, unless it is
   * not `raced`: then its work sees the halt signal and decides (a switch
   * already sent must be known to have happened or not).
   */
  async function step(
    name: StepName,
    work: (halted: AbortSignal) => Promise<string>,
    { raced = true } = {},
  ): Promise<void> {
    const at = Date.now();
    reporter.stepStarted(name, at);
    let status: StepRecord['status'] = 'ok';
    let detail: string;
    try {
      detail = await (raced ? Promise.race([work(halt.signal), halted]) : work(halt.signal));
    } catch (error) {
      status = 'failed';
      detail = error instanceof Error ? error.message : String(error);
    }
    recordStep(name, at, status, detail);
    if (status === 'failed') throw new StepFailed(`${name}: ${detail}`);
  }

  function retried<T>(
    call: () => Promise<T>,
    wording: Parameters<typeof retriedCall>[2],
    signal?: AbortSignal,
  ): Promise<{ value: T; note: string }> {
    return retriedCall(options.adminRetry, call, wording, signal);
  }

  function skip(name: StepName, why: string): void {
    recordStep(name, Date.now(), 'skipped', why);
  }

  function finish(result: DeploymentRecord['result']): DeploymentRecord {
    record.result = result;
    record.finished_at = new Date().toISOString();
    record.duration_ms = Date.now() - started;
    return record;
  }

  // 1. The lock. A refused deploy writes nothing: only the holder writes the history.
  try {
    await step('lock', async () => {
      held = await lock.acquire(`deploy ${options.version}`);
      void held.lost.then((reason) =>
        halt.abort(new StepFailed(`lost the deploy lock: ${reason}`)),
      );
      return `${lock.kind} lock ${lock.location}`;
    });
  } catch (error) {
    record.reason = (error as Error).message;
    deps.signal.removeEventListener('abort', onSignal);
    const done = finish('failed');
    reporter.finished(done);
    return done;
  }

  let active: Slot | undefined;
  let target: Slot | undefined;
  let activeEpoch: number | undefined;
  let switched: SwitchAnswer | undefined;
  /** Whether the new version was (perhaps) started on the idle slot, and a switch (perhaps) sent. */
  let startTried = false;
  let switchTried = false;
  try {
    await store.save(record);

    await step('active', async () => {
      const status = await admin.status();
      if (!isSlot(status.active))
        throw new Error(
          `the proxy's status has no active slot: ${JSON.stringify(status).slice(0, 200)}`,
        );
      active = status.active;
      target = otherSlot(active);
      record.from_slot = active;
      record.to_slot = target;
      if (typeof status.epoch === 'number') activeEpoch = status.epoch;
      const epoch = activeEpoch !== undefined ? ` (epoch ${activeEpoch})` : '';
      return `${active} is active${epoch}; deploying to ${target}`;
    });
    const from = active!;
    const to = target!;

    if (options.skipSnapshot !== undefined) skip('snapshot', options.skipSnapshot);
    else
      await step('snapshot', async () => {
        const result = await runner.runCommand(to, [
          'snapshot',
          'create',
          '--reason',
          'pre-deploy',
        ]);
        if (result.code !== 0) {
          throw new Error(
            `togather snapshot create failed (exit ${result.code}): ${tail(result.output)}`,
          );
        }
        return tail(result.output, 1) || 'snapshot created';
      });

    if (options.skipMigrations) skip('migrate', '--skip-migrations');
    else
      await step('migrate', async () => {
        const result = await runner.runCommand(to, ['migrate', 'up']);
        if (result.code !== 0) {
          throw new Error(
            `togather migrate up failed (exit ${result.code}): ${tail(result.output)}`,
          );
        }
        return tail(result.output, 1) || 'migrations applied';
      });

    startTried = true;
    await step('start', () => runner.start(to));

    await step('health', async (halted) => {
      const url = runner.slotUrl(to);
      const waited = await waitHealthyWhileRunning(url, {
        retries: options.healthRetries,
        intervalMs: options.healthIntervalMs,
        signal: halted,
        exited: () => runner.exited(to),
      });
      if (waited.exited) throw new Error(`the new version on ${to} ${waited.exited}`);
      if (!waited.healthy) {
        throw new Error(
          `${to} not healthy after ${waited.attempts} checks: /health ${waited.last.summary}`,
        );
      }
      const version = await probe(`${url}/version`);
      const reported = version.body?.version;
      if (typeof reported !== 'string') {
        throw new Error(`${to} /version answered ${version.summary}, without a version`);
      }
      // The slot record holds what the process says, whatever was asked for.
      await runner.noteVersion(to, reported);
      if (reported !== options.version) {
        throw new Error(
          `${to} reports version ${reported}, not ${options.version} as ${options.versionSource} says`,
        );
      }
      return `${to} healthy (${String(waited.last.body?.status)}) after ${waited.attempts} check(s), version ${reported}`;
    });

    switchTried = true;
    await step(
      'switch',
      async (halted) => {
        // expect_epoch: if anyone switched since we read the state, stop rather than overrule them.
        const { value, note } = await retried(
          () => admin.switch(to, activeEpoch !== undefined ? { expectEpoch: activeEpoch } : {}),
          {
            refused: (e) =>
              `the proxy refused the switch to ${to} (${e.status} ${e.code}): ${e.message}`,
            failed: (message) => message,
          },
          halted,
        );
        switched = value;
        if (switched.active !== to)
          throw new Error(`the proxy reports ${switched.active} active after the switch`);
        return `${from} -> ${to} at epoch ${switched.epoch}${note}`;
      },
      // Not cut short: the answer of a switch already sent decides whether to roll back.
      { raced: false },
    );

    await step('verify', async () => {
      const result = await verifyAfterSwitch({
        proxyUrl: options.proxyUrl,
        slot: to,
        version: options.version,
        durationMs: options.verifyMs,
        intervalMs: options.verifyIntervalMs,
        maxErrorRatio: options.maxErrorRatio,
        minRequests: 10,
        maxConsecutiveFailures: 2,
        metrics: deps.metrics,
        signal: deps.signal,
      });
      if (!result.ok) throw new Error(result.reason);
      return result.detail;
    });

    if (options.stopOld) await step('stop-old', () => runner.stop(from));
    else skip('stop-old', `${from} kept running for instant rollback (togather rollback)`);

    finish('deployed');
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    if (switched && active) {
      record.rollback_reason = reason;
      const back = active;
      try {
        await rollbackStep(back, switched.epoch);
        finish('rolled_back');
      } catch (rollbackError) {
        record.reason = `${reason}; then ${(rollbackError as Error).message}`;
        finish('failed');
      }
    } else {
      record.reason = reason;
      finish('failed');
    }
    // The idle slot gets back what served there: never the failed build, and
    // never while it serves the traffic (a rollback that failed).
    const trafficBack = !switched || record.result === 'rolled_back';
    if (startTried && trafficBack && active && target) {
      const problem = await restoreStep(active, target);
      if (problem) record.reason = record.reason ? `${record.reason}; then ${problem}` : problem;
      finish(record.result);
    }
  } finally {
    deps.signal.removeEventListener('abort', onSignal);
    try {
      await store.save(record);
    } catch (error) {
      reporter.warn(
        `could not record the deployment in ${store.location}: ${(error as Error).message}`,
      );
    }
    await held?.release();
  }
  reporter.finished(record);
  return record;

  async function rollbackStep(back: Slot, epoch: number): Promise<void> {
    // Not halted by the interrupt: a rollback is what an interrupted deploy needs.
    const at = Date.now();
    reporter.stepStarted('rollback', at);
    let detail: string;
    let status: StepRecord['status'] = 'ok';
    try {
      // expect_epoch: roll back only the switch this deploy made, never a later one.
      const { value, note } = await retried(() => admin.switch(back, { expectEpoch: epoch }), {
        refused: (e) => `rollback to ${back} refused (${e.status} ${e.code}): ${e.message}`,
        failed: (message) => `rollback to ${back} failed: ${message}`,
      });
      detail = `${value.previous ?? '?'} -> ${value.active} at epoch ${value.epoch}${note}`;
    } catch (error) {
      status = 'failed';
      detail = (error as Error).message;
    }
    recordStep('rollback', at, status, detail);
    if (status === 'failed') throw new Error(detail);
  }

  /**
   * Puts back what served on the idle slot before the deploy, once the proxy
   * confirms the traffic is elsewhere; returns a problem for the record, if any.
   */
  async function restoreStep(serving: Slot, idle: Slot): Promise<string | undefined> {
    const at = Date.now();
    reporter.stepStarted('restore', at);
    let detail: string;
    let status: StepRecord['status'] = 'ok';
    try {
      const confirmed = await admin.status().then(
        (s) => s.active,
        (error: unknown) => {
          // Unknown is fine only if this deploy never sent a switch.
          if (switchTried)
            throw new Error(`cannot tell which slot is active: ${(error as Error).message}`);
          return serving;
        },
      );
      if (confirmed !== serving) {
        throw new Error(`the proxy reports ${String(confirmed)} active: ${idle} is left as it is`);
      }
      // The previous version has started before: it gets at least a minute
      // (a deploy's own health window may be short to fail a new build fast).
      const intervalMs = Math.max(options.healthIntervalMs, 100);
      detail = await runner.restore(idle, {
        retries: Math.max(options.healthRetries, Math.ceil(RESTORE_WAIT_MS / intervalMs)),
        intervalMs,
      });
    } catch (error) {
      status = 'failed';
      detail = (error as Error).message;
    }
    recordStep('restore', at, status, detail);
    return status === 'failed' ? `restore: ${detail}` : undefined;
  }
}

/**
 * An admin call retried while the proxy answers 429 or 503 (see admin-retry),
 * its failures worded by the caller; `note` tells the retries, if any, for
 * the step's detail.
 */
async function retriedCall<T>(
  policy: RetryPolicy,
  call: () => Promise<T>,
  wording: { refused: (e: AdminApiError) => string; failed: (message: string) => string },
  signal?: AbortSignal,
): Promise<{ value: T; note: string }> {
  try {
    const { value, retries } = await callWithRetries(call, policy, signal);
    return { value, note: retries.length > 0 ? ` ${retryNote(retries)}` : '' };
  } catch (error) {
    if (!(error instanceof RetriesEnded)) throw error;
    const last = error.last;
    if (last instanceof StepFailed) {
      // Halted between attempts: the halt's reason, and what was tried.
      const note = retryNote(error.retries);
      throw new StepFailed(`${last.message}${note ? ` (${note})` : ''}`);
    }
    const message =
      last instanceof AdminApiError
        ? wording.refused(last)
        : wording.failed(last instanceof Error ? last.message : String(last));
    const why = error.why ?? (error.retries.length > 0 ? retryNote(error.retries) : undefined);
    throw new Error(why ? `${message}; ${why}` : message);
  }
}
