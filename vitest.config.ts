import { configDefaults, defineConfig } from "vitest/config";

/**
 * The PostgreSQL restart test takes the shared server down for a moment; it runs in a
 * group of its own after every other file, so no other test meets the outage.
 */
const SERVER_RESTART = ["test/e2e/postgres-restart.test.ts"];

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
        test: { name: "server-restart", include: SERVER_RESTART, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
