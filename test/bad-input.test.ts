import { execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalBackend } from "../backends/local.js";
import { BlobType } from "../engine/blob-index.js";
import { Repository } from "../engine/repository.js";
import { saveTree, type TreeNode } from "../engine/tree.js";
import { CLI, PASSWORD, cairn, cairnOk, tempDir } from "./helpers.js";

/** Every file under a directory with a hash of its bytes: "nothing changed" means this is equal. */
function fingerprint(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const full = path.join(d, name);
      if (lstatSync(full).isDirectory()) walk(full);
      else out[path.relative(dir, full)] = createHash("sha256").update(readFileSync(full)).digest("hex");
    }
  };
  walk(dir);
  return out;
}

const isRoot = process.getuid?.() === 0;

describe("bad input loses nothing", () => {
  const tmp = tempDir();
  const repo = path.join(tmp.dir, "repo");
  const src = path.join(tmp.dir, "src");
  const r = (...args: string[]) => ["-r", repo, ...args];
  let first = "";

  beforeAll(async () => {
    mkdirSync(src);
    writeFileSync(path.join(src, "a.txt"), "alpha\n");
    writeFileSync(path.join(src, "b.bin"), randomBytes(1024 * 1024));
    await cairnOk(r("init"));
    first = JSON.parse((await cairnOk(r("backup", src, "--json"))).stdout).id;
  });
  afterAll(() => tmp.cleanup());

  it("a wrong password exits 12 and changes nothing", async () => {
    const before = fingerprint(repo);
    for (const args of [["backup", src], ["snapshots"], ["restore", "latest", "--target", path.join(tmp.dir, "never")]]) {
      const res = await cairn(r(...args), { env: { CAIRN_PASSWORD: "not the password" } });
      expect(res.code).toBe(12);
      expect(res.stderr).toMatch(/wrong password/);
    }
    expect(fingerprint(repo)).toEqual(before);
    expect(existsSync(path.join(tmp.dir, "never"))).toBe(false);
  });

  it("a path that is not a repository exits 10", async () => {
    for (const where of [path.join(tmp.dir, "missing"), src]) {
      const res = await cairn(["-r", where, "snapshots"]);
      expect(res.code).toBe(10);
      expect(res.stderr).toMatch(/no Cairn repository at/);
    }
    expect(existsSync(path.join(tmp.dir, "missing"))).toBe(false);
  });

  it("init refuses to overwrite an existing repository", async () => {
    const before = fingerprint(repo);
    const res = await cairn(r("init"));
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/already exists/);
    expect(fingerprint(repo)).toEqual(before);
  });

  it("a missing source path fails clearly and writes no snapshot", async () => {
    const before = JSON.parse((await cairnOk(r("snapshots", "--json"))).stdout).length;
    const res = await cairn(r("backup", path.join(tmp.dir, "no-such-dir")));
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/cannot back up .*no-such-dir/);
    expect(JSON.parse((await cairnOk(r("snapshots", "--json"))).stdout).length).toBe(before);
  });

  it("unreadable files are reported, the rest is backed up, and the exit code is 3", async () => {
    // As root every file is readable, so the backup runs as an unprivileged user.
    const base = path.join(tmp.dir, "perm");
    const psrc = path.join(base, "src");
    const prepo = path.join(base, "repo");
    mkdirSync(psrc, { recursive: true });
    writeFileSync(path.join(psrc, "readable.txt"), "fine\n");
    writeFileSync(path.join(psrc, "secret.txt"), "no\n");
    mkdirSync(path.join(psrc, "closed-dir"));
    writeFileSync(path.join(psrc, "closed-dir", "inside.txt"), "hidden\n");
    const uid = isRoot ? 65534 : process.getuid!();
    const gid = isRoot ? 65534 : process.getgid!();
    if (isRoot) {
      chmodSync(tmp.dir, 0o755);
      for (const p of [base, psrc, path.join(psrc, "readable.txt")]) chownSync(p, uid, gid);
    }
    chmodSync(path.join(psrc, "secret.txt"), 0o000);
    chmodSync(path.join(psrc, "closed-dir"), 0o000);
    const run = (args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [CLI, "-r", prepo, ...args], { uid, gid, env: { ...process.env, CAIRN_PASSWORD: PASSWORD }, stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d) => (stdout += d));
        child.stderr.on("data", (d) => (stderr += d));
        child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
      });
    expect((await run(["init"])).code).toBe(0);
    const res = await run(["backup", psrc, "--json"]);
    expect(res.code).toBe(3);
    expect(res.stderr).toMatch(/secret\.txt/);
    expect(res.stderr).toMatch(/closed-dir/);
    const snap = JSON.parse(res.stdout);
    expect(snap.errors.map((e: { path: string }) => path.basename(e.path)).sort()).toEqual(["closed-dir", "secret.txt"]);
    const ls = await run(["ls", snap.id, "--json"]);
    const paths = (JSON.parse(ls.stdout) as { path: string }[]).map((e) => e.path);
    expect(paths).toContain(`${psrc}/readable.txt`);
    expect(paths).not.toContain(`${psrc}/secret.txt`);
  });

  it("a full disk during backup gives a clear error, writes no snapshot, and the repository still checks clean", async () => {
    expect(isRoot, "this test mounts a small tmpfs and must run as root (CI does)").toBe(true);
    const mnt = path.join(tmp.dir, "small-disk");
    mkdirSync(mnt);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=12m", "tmpfs", mnt]);
    try {
      const frepo = path.join(mnt, "repo");
      await cairnOk(["-r", frepo, "init", "--pack-size", "4"]);
      const big = path.join(tmp.dir, "big");
      mkdirSync(big);
      for (let i = 0; i < 6; i++) writeFileSync(path.join(big, `f${i}`), randomBytes(4 * 1024 * 1024));
      const res = await cairn(["-r", frepo, "backup", big]);
      expect(res.code).toBe(1);
      expect(res.stderr).toMatch(/disk is full/);
      expect(existsSync(path.join(frepo, "snapshots")) ? readdirSync(path.join(frepo, "snapshots")) : []).toEqual([]);
      const check = await cairnOk(["-r", frepo, "check", "--read-data", "--json"]);
      expect(JSON.parse(check.stdout).errors).toEqual([]);
      // No temporary files are left behind to eat the space.
      const leftovers = Object.keys(fingerprint(frepo)).filter((f) => path.basename(f).startsWith(".tmp-"));
      expect(leftovers).toEqual([]);
    } finally {
      execFileSync("umount", [mnt]);
    }
  });

  it("restore refuses a crafted snapshot whose names would escape the target", async () => {
    const opened = await Repository.open(new LocalBackend(repo), PASSWORD, { threads: 0 });
    const payload = Buffer.from("pwned\n");
    const blob = opened.blobId(payload);
    await opened.saveBlob(BlobType.data, Buffer.from(payload), blob);
    const file = (name: string): TreeNode => ({ name, type: "file", mode: 0o644, uid: 0, gid: 0, mtime: "0", ctime: "0", inode: "1", device: "1", links: 1, size: payload.length, content: [blob.toString("hex")] });
    const ids: string[] = [];
    for (const bad of ["../../escaped-dotdot", "/tmp/escaped-absolute", "..", "a/../../escaped-nested"]) {
      const { id: tree } = await saveTree(opened, { nodes: [file("harmless.txt"), file(bad)] });
      await opened.flush();
      ids.push(await opened.saveJSON("snapshots", { time: new Date().toISOString(), host: "evil", username: "x", paths: ["/"], tags: [], tree, program: "crafted" }));
    }
    await opened.close();
    const target = path.join(tmp.dir, "jail", "target");
    mkdirSync(target, { recursive: true });
    for (const id of ids) {
      const res = await cairn(r("restore", id, "--target", target));
      expect(res.code).toBe(1);
      expect(res.stderr).toMatch(/unsafe name/);
    }
    expect(existsSync(path.join(tmp.dir, "escaped-dotdot"))).toBe(false);
    expect(existsSync(path.join(tmp.dir, "jail", "escaped-dotdot"))).toBe(false);
    expect(existsSync("/tmp/escaped-absolute")).toBe(false);
    expect(readdirSync(target)).toEqual([]);
  });

  it("restore replaces a symlink in the target instead of following it out", async () => {
    const target = path.join(tmp.dir, "symlink-target");
    const outside = path.join(tmp.dir, "outside");
    mkdirSync(outside);
    // The snapshot has <src>/a.txt; plant <target><src> as a symlink to a directory outside.
    const planted = path.join(target, src);
    mkdirSync(path.dirname(planted), { recursive: true });
    symlinkSync(outside, planted);
    await cairnOk(r("restore", first, "--target", target));
    expect(readdirSync(outside)).toEqual([]);
    expect(lstatSync(planted).isDirectory()).toBe(true);
    expect(readFileSync(path.join(planted, "a.txt"), "utf8")).toBe("alpha\n");
  });
});
