import { vi } from 'vitest';

export interface WaitOptions {
  /** Give up after this long (ms); default 10 s. */
  timeout?: number;
  /** Between checks (ms); default 10, so short windows are still seen. */
  interval?: number;
  /** What is awaited, for the failure message. */
  what?: string;
}

/**
 * Waits until `check` returns true, polling through vitest's `vi.waitFor` (one
 * polling loop for the whole suite instead of one per test file). A check that
 * throws is not done yet either: the last error it threw is the failure, so a
 * check can say what it saw. Not a new check while one is running.
 */
export async function until(
  check: () => boolean | Promise<boolean>,
  { timeout = 10_000, interval = 10, what = 'the condition' }: WaitOptions = {},
): Promise<void> {
  await vi.waitFor(
    async () => {
      if (!(await check())) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    },
    { timeout, interval },
  );
}

/** Waits until `read` returns something other than undefined, and returns it. */
export async function valueOf<T>(
  read: () => T | undefined | Promise<T | undefined>,
  { timeout = 10_000, interval = 10, what = 'a value' }: WaitOptions = {},
): Promise<T> {
  return vi.waitFor(
    async () => {
      const value = await read();
      if (value === undefined) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
      return value;
    },
    { timeout, interval },
  );
}
