import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["{analytics,engine,backends,sources,policy,cli,workflows,activities,api,db,scripts}/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    // CLI tests spawn processes that use both cores themselves.
    maxWorkers: 2,
  },
});
