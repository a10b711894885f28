import type { Slot } from '../../common/slot.js';

export type StepStatus = 'ok' | 'failed' | 'skipped';

export interface StepRecord {
  name: string;
  status: StepStatus;
  started_at: string;
  duration_ms: number;
  /** One line: what the step did or why it failed. */
  detail: string;
}

/**
 * - deployed: the new version serves all traffic.
 * - rolled_back: it was switched to, failed verification, traffic is back on the old slot.
 * - failed: stopped before the switch (or a rollback that itself failed); traffic never moved
 *   unless `reason` says otherwise.
 * - in_progress: written at start, replaced at the end; left as is by a killed deploy.
 */
export type DeploymentResult = 'deployed' | 'rolled_back' | 'failed' | 'in_progress';

export interface DeploymentRecord {
  id: string;
  version: string;
  git_commit: string;
  /** What was started: an image (compose) or a build directory (local). */
  artifact: string;
  runner: 'compose' | 'local';
  from_slot: Slot | null;
  to_slot: Slot | null;
  started_at: string;
  finished_at: string | null;
  duration_ms: number | null;
  result: DeploymentResult;
  /** Why it failed, when it did. */
  reason: string | null;
  rollback_reason: string | null;
  actor: string;
  steps: StepRecord[];
}

/** Where deployment records are kept, for `deploy status` and `deploy history`. */
export interface DeploymentStore {
  readonly location: string;
  /** Inserts or replaces the record with this id. */
  save(record: DeploymentRecord): Promise<void>;
  /** Newest first. */
  list(limit: number): Promise<DeploymentRecord[]>;
}

/** Records kept: the newest ones, enough for an operator's history. */
export const HISTORY_LIMIT = 200;
