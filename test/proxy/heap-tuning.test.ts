import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { PROXY_NODE_FLAGS, withProxyNodeFlags } from '../../proxy/heap-tuning.js';

describe('the proxy node flags', { timeout: 30_000 }, () => {
  it('are added to a process’s own flags, a flag it or NODE_OPTIONS sets keeping its value', () => {
    expect(withProxyNodeFlags([], undefined)).toEqual(PROXY_NODE_FLAGS);
    expect(withProxyNodeFlags(['--enable-source-maps'], '--trace-warnings')).toEqual([
      '--enable-source-maps',
      ...PROXY_NODE_FLAGS,
    ]);
    expect(withProxyNodeFlags(['--max-semi-space-size=8'], undefined)).toEqual([
      '--max-semi-space-size=8',
    ]);
    expect(withProxyNodeFlags([], ' --trace-warnings  --max-semi-space-size=8')).toEqual([]);
    expect(withProxyNodeFlags(PROXY_NODE_FLAGS, undefined)).toEqual(PROXY_NODE_FLAGS);
  });

  it('cap the young generation when on the command line (2 × 32 MB new space, V8 grows it to 2 × 64 MB)', () => {
    const newSpace = (flags: readonly string[]) =>
      Number(
        execFileSync(
          process.execPath,
          [
            ...flags,
            '-p',
            // Allocation grows the new space to its maximum.
            'let k = []; for (let i = 0; i < 2e7; i++) { k.push({ i }); if (k.length > 1e6) k = []; } ' +
              "require('v8').getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size",
          ],
          { encoding: 'utf8' },
        ),
      );
    expect(newSpace(PROXY_NODE_FLAGS)).toBe(64 * 1024 * 1024);
    expect(newSpace([])).toBeGreaterThan(64 * 1024 * 1024);
  });
});
