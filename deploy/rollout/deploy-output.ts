import type { DeploymentRecord, StepRecord } from '../records/deployment-record.js';
import { labelOf, type StepName } from './plan.js';

/** Where a deploy tells what it is doing, as it happens. */
export interface DeployReporter {
  stepStarted(name: StepName, at: number): void;
  stepFinished(step: StepRecord): void;
  warn(message: string): void;
  finished(record: DeploymentRecord): void;
}

type Write = (text: string) => void;

const MARK: Record<StepRecord['status'], string> = {
  ok: 'ok',
  failed: 'FAILED',
  skipped: 'skipped',
};

export function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function summaryLine(record: DeploymentRecord): string {
  const move = `${record.from_slot ?? '?'} -> ${record.to_slot ?? '?'}`;
  const took = record.duration_ms === null ? '' : ` in ${formatDuration(record.duration_ms)}`;
  switch (record.result) {
    case 'deployed': {
      const old = record.from_slot ?? 'the old slot';
      const stopped = record.steps.some((s) => s.name === 'stop-old' && s.status === 'ok');
      return `deployed ${record.version} (${move})${took}; ${old} ${stopped ? 'stopped (--stop-old)' : 'kept for rollback'}`;
    }
    case 'rolled_back':
      return `rolled back: ${record.version} was switched to and failed (${record.rollback_reason}); traffic is back on ${record.from_slot}`;
    case 'failed':
      return `deploy of ${record.version} failed: ${record.reason}`;
    default:
      return `deploy ${record.id} of ${record.version} is in progress`;
  }
}

/** One line per step when it ends: for logs, CI and pipes. */
export function plainReporter(write: Write, warnWrite: Write = write): DeployReporter {
  return {
    stepStarted() {},
    stepFinished(step) {
      write(
        `${step.name.padEnd(9)} ${MARK[step.status].padEnd(7)} ${formatDuration(step.duration_ms).padStart(8)}  ${step.detail}\n`,
      );
    },
    warn(message) {
      warnWrite(`warning: ${message}\n`);
    },
    finished(record) {
      write(`${summaryLine(record)}\n`);
    },
  };
}

/** Nothing while it runs; the whole record as one JSON object at the end. */
export function jsonReporter(write: Write, warnWrite: Write): DeployReporter {
  return {
    stepStarted() {},
    stepFinished() {},
    warn(message) {
      warnWrite(`warning: ${message}\n`);
    },
    finished(record) {
      write(JSON.stringify(record) + '\n');
    },
  };
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/**
 * A live step list on a terminal: finished steps with their durations, the
 * running one with a spinner and its elapsed time, redrawn in place.
 */
export function ttyReporter(write: Write, now: () => number = Date.now): DeployReporter {
  const done: StepRecord[] = [];
  let running: { name: StepName; at: number } | undefined;
  let drawn = 0;
  let frame = 0;
  let timer: NodeJS.Timeout | undefined;
  const warnings: string[] = [];

  function line(mark: string, name: string, duration: string, detail: string): string {
    return `${mark} ${name.padEnd(9)} ${duration.padStart(8)}  ${detail}`;
  }

  function draw() {
    const lines = done.map((s) =>
      line(
        s.status === 'ok' ? '✔' : s.status === 'failed' ? '✖' : '–',
        s.name,
        formatDuration(s.duration_ms),
        s.detail,
      ),
    );
    if (running) {
      lines.push(
        line(
          SPINNER[frame++ % SPINNER.length]!,
          running.name,
          formatDuration(now() - running.at),
          `${labelOf(running.name)}…`,
        ),
      );
    }
    lines.push(...warnings.map((w) => `! ${w}`));
    const up = drawn > 0 ? `\x1b[${drawn}F` : '';
    write(up + lines.map((l) => `\x1b[2K${l}\n`).join(''));
    drawn = lines.length;
  }

  return {
    stepStarted(name, at) {
      running = { name, at };
      draw();
      if (!timer) {
        timer = setInterval(draw, 100);
        timer.unref();
      }
    },
    stepFinished(step) {
      running = undefined;
      done.push(step);
      draw();
    },
    warn(message) {
      warnings.push(message);
      draw();
    },
    finished(record) {
      if (timer) clearInterval(timer);
      timer = undefined;
      running = undefined;
      draw();
      write(`${summaryLine(record)}\n`);
    },
  };
}
