import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { tempDir } from "../../test/helpers.js";
import { PREFETCH_DIR } from "./archive.js";
import { walFetchCommand } from "./restore.js";

/** Runs a restore_command as PostgreSQL does: %f and %p replaced, through the shell, in the data directory. */
function runRestoreCommand(command: string, pgdata: string, name: string): number | null {
  const line = command.replaceAll("%f", name).replaceAll("%p", `pg_wal/RECOVERYXLOG`);
  return spawnSync("/bin/sh", ["-c", line], { cwd: pgdata }).status;
}

describe("restore_command", () => {
  const tmp = tempDir("cairn-restore-command-");
  afterAll(() => tmp.cleanup());
  // A "cairn" that exits 7: it shows whether the command started it.
  const command = walFetchCommand({ program: ["/bin/sh", "-c", "exit 7"], repository: "/repo with space", passwordFile: "/pw", systemId: "42" });

  it("moves a segment fetched ahead into place without starting cairn", () => {
    const name = "000000010000000000000003";
    mkdirSync(path.join(tmp.dir, PREFETCH_DIR), { recursive: true });
    writeFileSync(path.join(tmp.dir, PREFETCH_DIR, name), "segment bytes");
    expect(runRestoreCommand(command, tmp.dir, name)).toBe(0);
    expect(readFileSync(path.join(tmp.dir, "pg_wal", "RECOVERYXLOG"), "utf8")).toBe("segment bytes");
    expect(existsSync(path.join(tmp.dir, PREFETCH_DIR, name))).toBe(false);
  });

  it("starts cairn for anything not fetched ahead, and passes its exit code on", () => {
    expect(runRestoreCommand(command, tmp.dir, "000000010000000000000004")).toBe(7);
    expect(runRestoreCommand(command, tmp.dir, "00000002.history")).toBe(7);
  });
});
