import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Real processes, real files, a real database: give them time, never a timed assertion.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Two cores: more files at once only make the process-killing tests flaky.
    maxWorkers: 2,
  },
});
