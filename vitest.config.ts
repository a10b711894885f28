import { defineConfig } from 'vitest/config';

// Tests start real processes, servers and databases: run files in separate
// forks, at most two at a time on the 2-core machines, with generous timeouts.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
  },
});
