import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cairn, cairnBytes, cairnOk, tempDir } from "./helpers.js";
import { describeTree, makeOddTree } from "./tree-fixtures.js";

describe("backup and restore round trip (CLI, local repository)", () => {
  const tmp = tempDir();
  const src = path.join(tmp.dir, "src");
  const repo = path.join(tmp.dir, "repo");
  const r = (...args: string[]) => ["-r", repo, ...args];

  beforeAll(async () => {
    makeOddTree(src);
    await cairnOk(r("init"));
  });
  afterAll(() => tmp.cleanup());

  it("restores an odd tree byte-identical, with modes, mtimes and symlinks", async () => {
    const backup = await cairnOk(r("backup", src, "--json"));
    const snap = JSON.parse(backup.stdout);
    expect(snap.summary.filesNew).toBeGreaterThan(10);
    const target = path.join(tmp.dir, "restore1");
    await cairnOk(r("restore", snap.id, "--target", target, "--verify"));
    expect(describeTree(path.join(target, src))).toEqual(describeTree(src));
  });

  it("does not re-read unchanged files and stores little for a small change", async () => {
    const noop = JSON.parse((await cairnOk(r("backup", src, "--json"))).stdout);
    expect(noop.summary.bytesRead).toBe(0);
    expect(noop.summary.filesUnmodified).toBe(noop.summary.filesNew + noop.summary.filesChanged + noop.summary.filesUnmodified);
    expect(noop.summary.dataAdded).toBe(0);

    appendFileSync(path.join(src, "large.bin"), "one more line\n");
    const changed = JSON.parse((await cairnOk(r("backup", src, "--json"))).stdout);
    expect(changed.summary.filesChanged).toBe(1);
    // The 10+ MiB file changed at its end: only the last chunk or two are new.
    expect(changed.summary.dataAdded).toBeLessThan(9 * 1024 * 1024);
    expect(changed.summary.dataAdded).toBeGreaterThan(0);

    const forced = JSON.parse((await cairnOk(r("backup", src, "--force", "--json"))).stdout);
    expect(forced.summary.bytesRead).toBeGreaterThan(10 * 1024 * 1024);
    expect(forced.summary.dataAdded).toBe(0);
  });

  it("restores selectively with include and exclude, and previews with --dry-run", async () => {
    const target = path.join(tmp.dir, "restore-sel");
    const dry = JSON.parse((await cairnOk(r("restore", "latest", "--target", target, "--include", "*.txt", "--dry-run", "--json"))).stdout);
    expect(dry.dryRun).toBe(true);
    expect(dry.files).toBe(3);
    expect(existsSync(target)).toBe(false);
    await cairnOk(r("restore", "latest", "--target", target, "--include", "*.txt", "--exclude", "bottom.txt"));
    const restored = describeTree(path.join(target, src), true);
    const files = Object.entries(restored).filter(([, f]) => f.type === "file").map(([p]) => p).sort();
    expect(files).toEqual(["naïve café ünïcødé 日本語 🙂.txt", "small.txt"]);
  });

  it("delta restore rewrites only what differs, and --delete removes extra files", async () => {
    const target = path.join(tmp.dir, "restore-delta");
    await cairnOk(r("restore", "latest", "--target", target));
    const root = path.join(target, src);
    const big = path.join(root, "large.bin");
    const bytes = readFileSync(big);
    bytes[100] ^= 0xff;
    writeFileSync(big, bytes);
    writeFileSync(path.join(root, "extra-file"), "not in the snapshot");
    const res = JSON.parse((await cairnOk(r("restore", "latest", "--target", target, "--overwrite", "if-changed", "--delete", "--verify", "--json"))).stdout);
    expect(res.filesSkipped).toBeGreaterThan(10);
    expect(res.bytesWritten).toBeGreaterThan(0);
    expect(res.bytesWritten).toBeLessThan(9 * 1024 * 1024);
    expect(res.deleted).toEqual([path.join(root, "extra-file")]);
    expect(describeTree(root)).toEqual(describeTree(src));
  });

  it("--overwrite never keeps existing files", async () => {
    const target = path.join(tmp.dir, "restore-never");
    await cairnOk(r("restore", "latest", "--target", target));
    const small = path.join(target, src, "small.txt");
    writeFileSync(small, "mine");
    await cairnOk(r("restore", "latest", "--target", target, "--overwrite", "never"));
    expect(readFileSync(small, "utf8")).toBe("mine");
  });

  it("lists, dumps and backs up streams", async () => {
    const ls = JSON.parse((await cairnOk(r("ls", "latest", "--json"))).stdout) as { path: string }[];
    expect(ls.map((e) => e.path)).toContain(`${src}/deep/level-0/level-1`);
    // A path lists that directory and what is under it, nothing beside it.
    const deep = (await cairnOk(r("ls", "latest", `${src}/deep/`))).stdout.trimEnd().split("\n");
    expect(deep[0]).toBe(`${src}/deep/`);
    expect(deep).toContain(`${src}/deep/level-0/level-1/`);
    expect(deep.every((l) => l.startsWith(`${src}/deep/`))).toBe(true);
    expect(deep.length).toBe(ls.filter((e) => e.path === `${src}/deep` || e.path.startsWith(`${src}/deep/`)).length);
    const dumped = cairnBytes(r("dump", "latest", `${src}/large.bin`));
    expect(dumped.code).toBe(0);
    expect(dumped.stdout.equals(readFileSync(path.join(src, "large.bin")))).toBe(true);

    const payload = Buffer.from("-- a database dump\n".repeat(100_000));
    const viaStdin = JSON.parse((await cairnOk(r("backup", "--stdin", "--stdin-filename", "db.sql", "--json"), { input: payload })).stdout);
    expect(cairnBytes(r("dump", viaStdin.id, "/db.sql")).stdout.equals(payload)).toBe(true);

    const viaCmd = JSON.parse((await cairnOk(r("backup", "--stdin-from-command", "--stdin-filename", "gen.txt", "--json", "--", "sh", "-c", "seq 1 200000"))).stdout);
    const expected = Array.from({ length: 200000 }, (_, i) => `${i + 1}\n`).join("");
    expect(cairnBytes(r("dump", viaCmd.id, "gen.txt")).stdout.toString()).toBe(expected);
  });

  it("writes no snapshot when the dump command fails", async () => {
    const before = JSON.parse((await cairnOk(r("snapshots", "--json"))).stdout).length;
    const failed = await cairn(r("backup", "--stdin-from-command", "--", "sh", "-c", "echo partial; exit 7"));
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/exited with status 7; no snapshot was written/);
    expect(JSON.parse((await cairnOk(r("snapshots", "--json"))).stdout).length).toBe(before);
  });
});
