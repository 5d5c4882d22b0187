import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["{analytics,engine,backends,sources,policy,cli,workflows,activities,api,db,scripts}/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // One Temporal dev server for the run; each end-to-end file gets a namespace on it (test/stack.ts).
    globalSetup: ["test/global-setup.ts"],
    pool: "forks",
    // CLI tests spawn processes that use both cores themselves.
    maxWorkers: 2,
  },
});
