import { spawnSync } from 'node:child_process';

export interface PromtoolResult {
  status: number | null;
  /** stdout and stderr together: empty when `check metrics` finds nothing. */
  output: string;
}

/**
 * `promtool <args>` (Debian's prometheus package) with `input` on stdin. A
 * missing promtool fails the test that needs it with what to install: the
 * checks run on the real /metrics text and configuration, never skipped.
 */
export function promtool(args: string[], input?: string): PromtoolResult {
  const result = spawnSync('promtool', args, { input, encoding: 'utf8', timeout: 30_000 });
  if (result.error) {
    if ((result.error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(
        'promtool is not installed: this test runs `promtool ' +
          args.join(' ') +
          '` on the real output. Install it (Debian/Ubuntu: apt-get install prometheus; CI does) and run again.',
      );
    }
    throw result.error;
  }
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

/** `promtool check metrics` on an exposition text: `{status: 0, output: ''}` when clean. */
export function checkMetrics(text: string): PromtoolResult {
  return promtool(['check', 'metrics'], text);
}
