import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { PROXY_NODE_FLAGS, withProxyNodeFlags } from '../../proxy/heap-tuning.js';

describe('the proxy node flags', () => {
  it('are added to a process’s own flags, a flag it sets already keeping its value', () => {
    expect(withProxyNodeFlags([])).toEqual(PROXY_NODE_FLAGS);
    expect(withProxyNodeFlags(['--enable-source-maps'])).toEqual([
      '--enable-source-maps',
      ...PROXY_NODE_FLAGS,
    ]);
    expect(withProxyNodeFlags(['--max-semi-space-size=32'])).toEqual(['--max-semi-space-size=32']);
    expect(withProxyNodeFlags(PROXY_NODE_FLAGS)).toEqual(PROXY_NODE_FLAGS);
  });

  it('cap the young generation when on the command line (2 × 8 MB new space)', () => {
    const newSpace = (flags: readonly string[]) =>
      Number(
        execFileSync(
          process.execPath,
          [
            ...flags,
            '-p',
            // Allocation grows the new space to its maximum.
            'let k = []; for (let i = 0; i < 3e6; i++) { k.push({ i }); if (k.length > 2e5) k = []; } ' +
              "require('v8').getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size",
          ],
          { encoding: 'utf8' },
        ),
      );
    expect(newSpace(PROXY_NODE_FLAGS)).toBeLessThanOrEqual(16 * 1024 * 1024);
    expect(newSpace([])).toBeGreaterThan(16 * 1024 * 1024);
  });
});
