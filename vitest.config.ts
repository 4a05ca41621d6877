import { defineConfig } from 'vitest/config';

// The forks pool gives every test file its own process: tests that open sockets, spawn
// simulators or expose-gc cannot leak state into one another. No test asserts wall-clock
// durations (see DESIGN.md "Time"); timeouts here are only a safety net against hangs.
export default defineConfig({
  test: {
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // The JSON report lets .ci/run print the plain "N passed, N failed" closing line CI reads.
    reporters: ['default', ['json', { outputFile: '.vitest/results.json' }]],
  },
});
