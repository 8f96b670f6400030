import { configDefaults, defineConfig } from "vitest/config";

/**
 * The PostgreSQL restart and outage tests take the shared server down for a moment; they
 * run in a group of their own after every other file, one file at a time, so no other
 * test meets the outage.
 */
const SERVER_RESTART = ["test/e2e/postgres-restart.test.ts", "test/e2e/store-outage.test.ts"];

export default defineConfig({
  test: {
    // Real processes, real files, a real database: give them time, never a timed assertion.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Two cores: more files at once only make the process-killing tests flaky.
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: {
          name: "vigil",
          include: ["test/**/*.test.ts"],
          exclude: [...configDefaults.exclude, ...SERVER_RESTART],
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: { name: "server-restart", include: SERVER_RESTART, fileParallelism: false, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
