import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { tempDir } from "../../test/helpers.js";
import { PREFETCH_DIR } from "./archive.js";
import { physicalVersionRefusal } from "./basebackup.js";
import { expandedLength, RESTORE_COMMAND_MAX_BEFORE_13, walFetchCommand, writeDataDir } from "./restore.js";

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

  describe("on PostgreSQL 12 and older, which cut the expanded command at 1023 bytes", () => {
    const segment = "000000010000000000000005";
    // PostgreSQL 12 expands %p relative to the data directory: a data directory deep down a long path costs nothing.
    const deep = path.join(tmp.dir, ...Array.from({ length: 28 }, (_, i) => `data-directory-level-${i}-of-a-long-path`));
    const long = (n: number) => "/" + Array.from({ length: n }, (_, i) => `a-rather-long-directory-name-${i}`).join("/");

    it("keeps the prefetcher part for paths of a usual length, within the limit, and it runs from a data directory at a long path", () => {
      const c = walFetchCommand({ program: ["/opt/cairn/node-v24.22.3-linux-x64/bin/node", "/opt/cairn/app/dist/cli/main.js"], repository: "/var/lib/cairn/repositories/production-primary", passwordFile: "/etc/cairn/repository-password", systemId: "7443190034123456789", pgMajor: 12 });
      expect(c).toContain(PREFETCH_DIR);
      expect(expandedLength(c)).toBeLessThanOrEqual(RESTORE_COMMAND_MAX_BEFORE_13);
      expect(deep.length).toBeGreaterThan(RESTORE_COMMAND_MAX_BEFORE_13);
      mkdirSync(path.join(deep, PREFETCH_DIR), { recursive: true });
      writeFileSync(path.join(deep, PREFETCH_DIR, segment), "segment five");
      expect(runRestoreCommand(c, deep, segment)).toBe(0);
      expect(readFileSync(path.join(deep, "pg_wal", "RECOVERYXLOG"), "utf8")).toBe("segment five");
    });

    it("falls back to cairn alone when long paths leave no room for the prefetcher part, and still fits", () => {
      const o = { program: ["/bin/sh", "-c", "exit 7"], repository: long(12), passwordFile: "/pw", systemId: "42" };
      expect(expandedLength(walFetchCommand(o))).toBeGreaterThan(RESTORE_COMMAND_MAX_BEFORE_13);
      const c = walFetchCommand({ ...o, pgMajor: 12 });
      expect(c).not.toContain(PREFETCH_DIR);
      expect(expandedLength(c)).toBeLessThanOrEqual(RESTORE_COMMAND_MAX_BEFORE_13);
      expect(runRestoreCommand(c, tmp.dir, segment)).toBe(7);
      // PostgreSQL 13 and newer take the whole command.
      expect(walFetchCommand({ ...o, pgMajor: 13 })).toContain(PREFETCH_DIR);
    });

    it("refuses a command that cannot fit, naming the paths to shorten", () => {
      expect(() => walFetchCommand({ program: ["/usr/bin/node", "/opt/cairn/main.js"], repository: long(40), systemId: "42", pgMajor: 12 })).toThrow(/PostgreSQL 12 cuts it at 1023 bytes.*the repository \/a-rather-long/);
    });
  });
});


describe("PostgreSQL versions of physical backups", () => {
  const tmp = tempDir("cairn-restore-version-");
  afterAll(() => tmp.cleanup());

  it("takes 12 and newer, and refuses 10 and 11, whose recovery reads recovery.conf, saying why", () => {
    for (const v of ["12.0", "13.14", "15.4 (Debian 15.4-1.pgdg120+1)", "17beta1"]) expect(physicalVersionRefusal(v)).toBeUndefined();
    for (const v of ["11.22", "10.23 (Ubuntu 10.23-1)", "9.6.24"]) expect(physicalVersionRefusal(v)).toMatch(new RegExp(`PostgreSQL ${v.replace(/[()+.]/g, "\\$&")}; .*need PostgreSQL 12 or newer.*recovery\\.conf`));
    expect(physicalVersionRefusal("15.4", 110022)).toMatch(/need PostgreSQL 12 or newer/);
  });

  it("refuses to restore a base backup of PostgreSQL 11 before writing anything", async () => {
    const target = path.join(tmp.dir, "data");
    const backup = { id: "0123456789abcdef", tree: "t", source: { type: "postgres", mode: "physical", systemId: "42", serverVersion: "11.22", segmentSize: 16 << 20 } };
    await expect(writeDataDir(undefined as never, backup as never, { targetDir: target, target: { kind: "latest" } as never, action: "promote", restoreCommand: "false" })).rejects.toThrow(
      /snapshot 01234567 cannot be restored: the cluster runs PostgreSQL 11\.22; .*restore a logical dump instead/,
    );
    expect(existsSync(target)).toBe(false);
  });
});
