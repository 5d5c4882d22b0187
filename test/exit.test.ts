import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, PASSWORD, cairnOk, tempDir } from "./helpers.js";

const isRoot = process.getuid?.() === 0;
/** Far longer than any of these commands needs: only a process that does not end reaches it. */
const DEADLINE_MS = 90_000;

interface Ended {
  /** False when the process was still running at the deadline (and was killed). */
  exited: boolean;
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `bash -c script` with the CLI as $CAIRN; kills it if it has not ended by the deadline. */
function shell(script: string): Promise<Ended> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-c", script], {
      env: { ...process.env, CAIRN: `${process.execPath} ${CLI}`, CAIRN_PASSWORD: PASSWORD },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d) => out.push(d));
    child.stderr.on("data", (d) => err.push(d));
    let exited = true;
    const timer = setTimeout(() => {
      exited = false;
      child.kill("SIGKILL");
    }, DEADLINE_MS);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ exited, code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
  });
}

/** Mounts a tmpfs of `size` at `dir` for the duration of `fn`. */
async function onSmallDisk<T>(dir: string, size: string, fn: () => Promise<T>): Promise<T> {
  mkdirSync(dir, { recursive: true });
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir]);
  try {
    return await fn();
  } finally {
    execFileSync("umount", [dir]);
  }
}

/**
 * A fatal error ends the process (issue 13: a failed restore kept running for ten
 * minutes): the command prints one clear line, no stack, and exits with its documented
 * code even with codec threads busy, files open and reads in flight; a closed
 * standard output ends a command quietly.
 */
describe("a command that fails ends its process", () => {
  const tmp = tempDir("cairn-exit-");
  const src = path.join(tmp.dir, "src");
  const repo = path.join(tmp.dir, "repo");

  beforeAll(async () => {
    expect(isRoot, "these tests mount small tmpfs disks and must run as root (CI does)").toBe(true);
    mkdirSync(path.join(src, "big"), { recursive: true });
    mkdirSync(path.join(src, "small"));
    for (let i = 0; i < 24; i++) writeFileSync(path.join(src, "big", `b${i}.bin`), randomBytes(1024 * 1024));
    for (let i = 0; i < 3000; i++) writeFileSync(path.join(src, "small", `s${String(i).padStart(4, "0")}.txt`), randomBytes(i % 3000));
    await cairnOk(["-r", repo, "init", "--pack-size", "4"]);
    await cairnOk(["-r", repo, "backup", src]);
  });
  afterAll(() => tmp.cleanup());

  it("restore into a disk that fills up exits 1, naming the file and the cause", async () => {
    const target = path.join(tmp.dir, "full-target");
    const res = await onSmallDisk(target, "6m", () => shell(`$CAIRN -r "${repo}" restore latest --target "${target}"`));
    expect(res.exited, "cairn restore was still running at the deadline").toBe(true);
    expect(res.code, res.stderr).toBe(1);
    expect(res.stderr).toMatch(/^cairn: cannot restore .*: ENOSPC: no space left on device.*disk is full/m);
    expect(res.stderr).not.toMatch(/^\s+at /m);
  });

  it("restore exits 1 when a pack it needs is gone, while other packs are still being written", async () => {
    const damaged = path.join(tmp.dir, "repo-missing-pack");
    cpSync(repo, damaged, { recursive: true });
    const packs = readdirSync(path.join(damaged, "data"), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => path.join(e.parentPath, e.name));
    expect(packs.length).toBeGreaterThan(4);
    // The largest is a data pack (they are 4 MiB; the tree pack is far smaller).
    const [victim] = packs.sort((a, b) => statSync(b).size - statSync(a).size);
    rmSync(victim);
    const target = path.join(tmp.dir, "missing-pack-target");
    const res = await shell(`$CAIRN -r "${damaged}" restore latest --target "${target}"`);
    expect(res.exited, "cairn restore was still running at the deadline").toBe(true);
    expect(res.code, res.stderr).toBe(1);
    expect(res.stderr).toContain(path.basename(victim));
    expect(res.stderr).not.toMatch(/^\s+at /m);
  });

  it("backup into a disk that fills up exits 1 and writes no snapshot", async () => {
    const mnt = path.join(tmp.dir, "full-repo");
    const res = await onSmallDisk(mnt, "8m", async () => {
      await cairnOk(["-r", `${mnt}/repo`, "init", "--pack-size", "4"]);
      const r = await shell(`$CAIRN -r "${mnt}/repo" backup "${src}"`);
      const snapshots = path.join(mnt, "repo", "snapshots");
      expect(existsSync(snapshots) ? readdirSync(snapshots) : []).toEqual([]);
      return r;
    });
    expect(res.exited, "cairn backup was still running at the deadline").toBe(true);
    expect(res.code, res.stderr).toBe(1);
    expect(res.stderr).toMatch(/disk is full/);
    expect(res.stderr).not.toMatch(/^\s+at /m);
  });

  it("a reader that stops early (| head) ends ls and dump quietly with exit code 0", async () => {
    for (const command of [`$CAIRN -r "${repo}" ls latest | head -n 1`, `$CAIRN -r "${repo}" dump latest "${src}/big/b0.bin" | head -c 100`]) {
      const res = await shell(`set -o pipefail; ${command} > /dev/null`);
      expect(res.exited, `${command} was still running at the deadline`).toBe(true);
      expect(res.stderr, command).toBe("");
      expect(res.code, command).toBe(0);
    }
  });
});

describe("a command whose work stalls", () => {
  it("exits 70 with an internal error instead of 0 when the event loop empties before the command settles", async () => {
    // What run() does around a command, with a command that awaits a promise nothing will resolve.
    const main = path.join(path.dirname(CLI), "..", "dist", "cli", "main.js");
    const script = `import { failIfStalled } from ${JSON.stringify(main)}; failIfStalled(); new Promise(() => {});`;
    const stalled = await shell(`"${process.execPath}" --input-type=module -e '${script}'`);
    expect(stalled.exited).toBe(true);
    expect(stalled.code).toBe(70);
    expect(stalled.stderr).toMatch(/stopped before it finished.*did not complete/);
    // Settled in time, the same process ends as it would have.
    const settled = `import { failIfStalled } from ${JSON.stringify(main)}; const done = failIfStalled(); setTimeout(done, 10);`;
    const ok = await shell(`"${process.execPath}" --input-type=module -e '${settled}'`);
    expect(ok.code).toBe(0);
    expect(ok.stderr).toBe("");
  });
});
