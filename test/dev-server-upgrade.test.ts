import { spawn } from "node:child_process";
import * as path from "node:path";
import { Connection } from "@temporalio/client";
import { afterAll, describe, expect, it } from "vitest";
import { findTemporalCli, freePort, startDevServer } from "../scripts/temporal.js";
import { SEARCH_ATTRIBUTES } from "../workflows/messages.js";
import { tempDir } from "./helpers.js";

/**
 * `npm start` keeps Temporal's state in .cairn/temporal.db. A file an older Cairn
 * made has only the search attributes of its day, and the dev server's
 * --search-attribute registers them only in a new file: startDevServer adds the
 * missing ones, so an upgraded stack starts and its jobs can set them.
 */
describe("the dev server on a database file from an older Cairn", () => {
  const tmp = tempDir("cairn-dev-upgrade-");
  afterAll(() => tmp.cleanup());

  it("registers the search attributes added since the file was made", async () => {
    const dbFile = path.join(tmp.dir, "temporal.db");
    const cli = await findTemporalCli(() => undefined);
    const port = await freePort();
    // The file as an older Cairn left it: only CairnPlan.
    const old = spawn(cli, ["server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", String(port), "--db-filename", dbFile, "--search-attribute", "CairnPlan=Keyword"], { stdio: "ignore" });
    const exited = new Promise((resolve) => old.once("exit", resolve));
    try {
      let listed: string[] = [];
      for (let i = 0; i < 240 && !listed.includes("CairnPlan"); i++) {
        await new Promise((r) => setTimeout(r, 250));
        listed = await Connection.connect({ address: `127.0.0.1:${port}`, connectTimeout: 1000 })
          .then((c) => c.operatorService.listSearchAttributes({ namespace: "default" }).then((r) => Object.keys(r.customAttributes ?? {})).finally(() => c.close()))
          .catch(() => []);
      }
      expect(listed).toContain("CairnPlan");
      expect(listed).not.toContain(SEARCH_ATTRIBUTES.outcome);
    } finally {
      old.kill("SIGTERM");
      await exited;
    }

    const server = await startDevServer({ dbFile, headless: true, log: () => undefined });
    try {
      const connection = await Connection.connect({ address: server.address });
      const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace: "default" });
      await connection.close();
      expect(Object.keys(customAttributes ?? {})).toEqual(expect.arrayContaining(Object.values(SEARCH_ATTRIBUTES)));
    } finally {
      await server.stop();
    }
  }, 240_000);
});
