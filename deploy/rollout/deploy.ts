import { randomUUID } from 'node:crypto';
import { AdminApiError, type AdminClient, type SwitchAnswer } from '../../proxy/admin/client.js';
import { isSlot, otherSlot, type Slot } from '../../proxy/state/slot-state.js';
import { probe, waitHealthy } from './app-probe.js';
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
  let lockLost: Promise<never> = new Promise<never>(() => {});
  const interrupted = new Promise<never>((_, reject) => {
    const fail = () => reject(new StepFailed('interrupted by a signal'));
    if (deps.signal.aborted) fail();
    else deps.signal.addEventListener('abort', fail, { once: true });
  });
  interrupted.catch(() => {});

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

  /** Runs one step, timing and recording it; a thrown error fails the deploy with its message. */
  async function step(name: StepName, work: () => Promise<string>): Promise<void> {
    const at = Date.now();
    reporter.stepStarted(name, at);
    let status: StepRecord['status'] = 'ok';
    let detail: string;
    try {
      detail = await Promise.race([work(), lockLost, interrupted]);
    } catch (error) {
      status = 'failed';
      detail = error instanceof Error ? error.message : String(error);
    }
    recordStep(name, at, status, detail);
    if (status === 'failed') throw new StepFailed(`${name}: ${detail}`);
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
      lockLost = held.lost.then((reason) => {
        throw new StepFailed(`lost the deploy lock: ${reason}`);
      });
      lockLost.catch(() => {});
      return `${lock.kind} lock ${lock.location}`;
    });
  } catch (error) {
    record.reason = (error as Error).message;
    const done = finish('failed');
    reporter.finished(done);
    return done;
  }

  let active: Slot | undefined;
  let target: Slot | undefined;
  let activeEpoch: number | undefined;
  let switched: SwitchAnswer | undefined;
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

    await step('start', () => runner.start(to));

    await step('health', async () => {
      const url = runner.slotUrl(to);
      const stop = new AbortController();
      const onAbort = () => stop.abort();
      deps.signal.addEventListener('abort', onAbort, { once: true });
      // A process that died is reported at once rather than after every retry.
      const watch = setInterval(() => {
        if (runner.exited(to)) stop.abort();
      }, 100);
      try {
        const waited = await waitHealthy(url, {
          retries: options.healthRetries,
          intervalMs: options.healthIntervalMs,
          signal: stop.signal,
        });
        const exited = runner.exited(to);
        if (exited) throw new Error(`the new version on ${to} ${exited}`);
        if (!waited.healthy) {
          throw new Error(
            `${to} not healthy after ${waited.attempts} checks: /health ${waited.last.summary}`,
          );
        }
        const version = await probe(`${url}/version`);
        const reported = version.body?.version;
        if (reported !== options.version) {
          throw new Error(
            `${to} reports version ${String(reported ?? version.summary)}, expected ${options.version}`,
          );
        }
        return `${to} healthy (${String(waited.last.body?.status)}) after ${waited.attempts} check(s), version ${options.version}`;
      } finally {
        clearInterval(watch);
        deps.signal.removeEventListener('abort', onAbort);
      }
    });

    await step('switch', async () => {
      try {
        // expect_epoch: if anyone switched since we read the state, stop rather than overrule them.
        switched = await admin.switch(
          to,
          activeEpoch !== undefined ? { expectEpoch: activeEpoch } : {},
        );
      } catch (error) {
        if (error instanceof AdminApiError) {
          throw new Error(
            `the proxy refused the switch to ${to} (${error.status} ${error.code}): ${error.message}`,
          );
        }
        throw error;
      }
      if (switched.active !== to)
        throw new Error(`the proxy reports ${switched.active} active after the switch`);
      return `${from} -> ${to} at epoch ${switched.epoch}`;
    });

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
  } finally {
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
    // Not raced with the interrupt: a rollback is what an interrupted deploy needs.
    const at = Date.now();
    reporter.stepStarted('rollback', at);
    let detail: string;
    let status: StepRecord['status'] = 'ok';
    try {
      // expect_epoch: roll back only the switch this deploy made, never a later one.
      const answer = await admin.switch(back, { expectEpoch: epoch });
      detail = `${answer.previous ?? '?'} -> ${answer.active} at epoch ${answer.epoch}`;
    } catch (error) {
      status = 'failed';
      detail =
        error instanceof AdminApiError
          ? `rollback to ${back} refused (${error.status} ${error.code}): ${error.message}`
          : `rollback to ${back} failed: ${(error as Error).message}`;
    }
    recordStep('rollback', at, status, detail);
    if (status === 'failed') throw new Error(detail);
  }
}
