import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BUILTINS_FLAG, HEAP_GROWTH_FLAG, MALLOC_ARENAS, NURSERY_FLAG, wantsNursery } from "../cli/nursery.js";
import { CLI, PASSWORD, cairn, cairnBytes, cairnOk, tempDir } from "./helpers.js";

/** The environment the process `pid` was started with (by its last execve). */
function environ(pid: number): Map<string, string> {
  const vars = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").filter(Boolean);
  return new Map(vars.map((v) => [v.slice(0, v.indexOf("=")), v.slice(v.indexOf("=") + 1)]));
}

/** The arguments the process `pid` runs with now (after any execve). */
function cmdline(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
}

/** Polls until `check` holds or `ms` have passed. */
async function until(check: () => boolean, ms = 30_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) if (check()) return true;
  return check();
}

describe("which commands get the small young generation", () => {
  it("data commands do, per-WAL-file commands, help and a node already given a size do not", () => {
    expect(wantsNursery(["-r", "/repo", "backup", "/srv"], [])).toBe(true);
    expect(wantsNursery(["restore", "latest", "--target", "/t"], [])).toBe(true);
    expect(wantsNursery(["--retry-lock", "5m", "check", "--read-data"], [])).toBe(true);
    expect(wantsNursery(["pg", "backup"], [])).toBe(true);
    expect(wantsNursery(["pg", "wal-push", "pg_wal/000000010000000000000001"], [])).toBe(false);
    expect(wantsNursery(["-r", "/repo", "pg", "wal-fetch", "--via", "/s", "f", "p"], [])).toBe(false);
    expect(wantsNursery(["snapshots"], [])).toBe(false);
    expect(wantsNursery(["restore", "--help"], [])).toBe(false);
    expect(wantsNursery([], [])).toBe(false);
    expect(wantsNursery(["backup", "/srv"], [NURSERY_FLAG])).toBe(false);
    expect(wantsNursery(["backup", "/srv"], [], "--max-semi-space-size=4")).toBe(false);
  });
});

/**
 * bin/cairn.js replaces its process with one started with NURSERY_FLAG: the same pid,
 * so what a caller holds (standard streams, the pid it signals, the exit code it
 * waits for) stays as it was.
 */
describe("a data command restarted with the small young generation", () => {
  const tmp = tempDir("cairn-nursery-");
  const repo = path.join(tmp.dir, "repo");
  beforeAll(() => cairnOk(["-r", repo, "init"]));
  afterAll(() => tmp.cleanup());

  it("keeps its pid and standard input: backup --stdin runs with the flag and stores what was piped in", async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const { MALLOC_ARENA_MAX: _, ...env } = process.env;
    const child = spawn(process.execPath, [CLI, "-r", repo, "backup", "--stdin", "--stdin-filename", "piped.bin", "--json"], {
      env: { ...env, CAIRN_PASSWORD: PASSWORD },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d) => out.push(d));
    child.stderr.on("data", (d) => err.push(d));
    const ended = new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(await until(() => cmdline(child.pid!).includes(NURSERY_FLAG)), "the process never ran with the flag").toBe(true);
    expect(cmdline(child.pid!), "the old generation grows by a fifth at a time").toContain(HEAP_GROWTH_FLAG);
    expect(cmdline(child.pid!), "built-in code is mapped once, not again per thread").toContain(BUILTINS_FLAG);
    expect(environ(child.pid!).get("MALLOC_ARENA_MAX"), "malloc keeps few arenas").toBe(MALLOC_ARENAS);
    child.stdin.end(data);
    expect(await ended, Buffer.concat(err).toString()).toBe(0);
    expect(JSON.parse(Buffer.concat(out).toString()).id).toMatch(/^[0-9a-f]{64}$/);
    const dumped = cairnBytes(["-r", repo, "dump", "latest", "/piped.bin"]);
    expect(dumped.code, dumped.stderr).toBe(0);
    expect(dumped.stdout.equals(data)).toBe(true);
  });

  it("ends on SIGTERM sent to the pid its caller started", async () => {
    const child = spawn(process.execPath, [CLI, "-r", repo, "backup", "--stdin", "--stdin-filename", "never.bin"], {
      env: { ...process.env, CAIRN_PASSWORD: PASSWORD },
      stdio: ["pipe", "ignore", "ignore"],
    });
    const ended = new Promise<NodeJS.Signals | null>((resolve) => child.on("close", (_code, signal) => resolve(signal)));
    expect(await until(() => cmdline(child.pid!).includes(NURSERY_FLAG))).toBe(true);
    child.kill("SIGTERM");
    expect(await ended).toBe("SIGTERM");
    child.stdin.destroy();
  });

  it("exits with the command's documented code", async () => {
    const res = await cairn(["-r", path.join(tmp.dir, "nothing-here"), "restore", "latest", "--target", path.join(tmp.dir, "t")]);
    expect(res.code, res.stderr).toBe(10);
  });
});
