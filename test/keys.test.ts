import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { LocalBackend } from "../backends/local.js";
import { readPackHeader } from "../engine/pack.js";
import { Repository } from "../engine/repository.js";
import { cairn, cairnOk, PASSWORD, tempDir } from "./helpers.js";

const NEW_PASSWORD = "a second, different password";

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

/** A repository with one snapshot of a small source tree. */
async function repoWithBackup(initArgs: string[] = []): Promise<{ dir: string; repo: string; src: string; snapshot: string }> {
  const t = tempDir("cairn-keys-");
  cleanups.push(t.cleanup);
  const repo = path.join(t.dir, "repo");
  const src = path.join(t.dir, "src");
  mkdirSync(src);
  writeFileSync(path.join(src, "random.bin"), randomBytes(2 * 1024 * 1024 + 123));
  writeFileSync(path.join(src, "notes.txt"), "hello keys\n".repeat(1000));
  await cairnOk(["init", "-r", repo, ...initArgs]);
  const snapshot = JSON.parse((await cairnOk(["backup", "-r", repo, "--json", src])).stdout).id as string;
  return { dir: t.dir, repo, src, snapshot };
}

/** Every file under data/ and index/ with the SHA-256 of its bytes. */
function dataAndIndex(repo: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const top of ["data", "index"]) {
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else out.set(path.relative(repo, p), createHash("sha256").update(readFileSync(p)).digest("hex"));
      }
    };
    walk(path.join(repo, top));
  }
  return out;
}

function passwordFile(dir: string, password: string): string {
  const file = path.join(dir, `pw-${randomBytes(4).toString("hex")}`);
  writeFileSync(file, password + "\n");
  return file;
}

async function snapshotIds(repo: string, password: string): Promise<string[]> {
  const r = await cairnOk(["snapshots", "-r", repo, "--json"], { env: { CAIRN_PASSWORD: password } });
  return (JSON.parse(r.stdout) as { id: string }[]).map((s) => s.id).sort();
}

async function keys(repo: string, password = PASSWORD): Promise<{ id: string; current: boolean; kdf: { name: string } }[]> {
  return JSON.parse((await cairnOk(["key", "list", "-r", repo, "--json"], { env: { CAIRN_PASSWORD: password } })).stdout);
}

describe("cairn key", () => {
  it("adds a second password that opens the same repository, without rewriting data", async () => {
    const { dir, repo, snapshot } = await repoWithBackup();
    const before = dataAndIndex(repo);
    const added = JSON.parse((await cairnOk(["key", "add", "-r", repo, "--json", "--kdf", "argon2id", "--new-password-file", passwordFile(dir, NEW_PASSWORD)])).stdout);

    expect(await snapshotIds(repo, PASSWORD)).toEqual([snapshot]);
    expect(await snapshotIds(repo, NEW_PASSWORD)).toEqual([snapshot]);
    const list = await keys(repo, NEW_PASSWORD);
    expect(list).toHaveLength(2);
    expect(list.find((k) => k.current)).toMatchObject({ id: added.id, kdf: { name: "argon2id" } });
    expect((await keys(repo, PASSWORD)).find((k) => k.current)!.id).not.toBe(added.id);
    expect(dataAndIndex(repo)).toEqual(before);
  });

  it("removes another key, after which its password is refused", async () => {
    const { repo, snapshot } = await repoWithBackup();
    const before = dataAndIndex(repo);
    const added = JSON.parse((await cairnOk(["key", "add", "-r", repo, "--json"], { env: { CAIRN_NEW_PASSWORD: NEW_PASSWORD } })).stdout);

    await cairnOk(["key", "remove", "-r", repo, added.id.slice(0, 8)]);
    const refused = await cairn(["snapshots", "-r", repo], { env: { CAIRN_PASSWORD: NEW_PASSWORD } });
    expect(refused.code).toBe(12);
    expect(await snapshotIds(repo, PASSWORD)).toEqual([snapshot]);
    expect(dataAndIndex(repo)).toEqual(before);
  });

  it("refuses to remove the key in use, and the last key", async () => {
    const { repo } = await repoWithBackup();
    const [only] = await keys(repo);
    const last = await cairn(["key", "remove", "-r", repo, only.id]);
    expect(last.code).toBe(1);
    expect(last.stderr).toMatch(/last key.*cairn key add/);

    await cairnOk(["key", "add", "-r", repo], { env: { CAIRN_NEW_PASSWORD: NEW_PASSWORD } });
    const inUse = await cairn(["key", "remove", "-r", repo, only.id.slice(0, 10)]);
    expect(inUse.code).toBe(1);
    expect(inUse.stderr).toMatch(/opened the repository with.*another key's password/);
    expect((await keys(repo)).map((k) => k.id)).toContain(only.id);
  });

  it("changes the password: the old one gets exit code 12, the new one sees the same snapshots", async () => {
    const { dir, repo, snapshot } = await repoWithBackup();
    const before = dataAndIndex(repo);
    const [old] = await keys(repo);
    const r = JSON.parse((await cairnOk(["key", "passwd", "-r", repo, "--json", "--new-password-file", passwordFile(dir, NEW_PASSWORD)])).stdout);
    expect(r.removed).toBe(old.id);

    const refused = await cairn(["snapshots", "-r", repo]);
    expect(refused.code).toBe(12);
    expect(refused.stderr).toMatch(/wrong password/);
    expect(await snapshotIds(repo, NEW_PASSWORD)).toEqual([snapshot]);
    expect((await keys(repo, NEW_PASSWORD)).map((k) => k.id)).toEqual([r.added]);
    expect(dataAndIndex(repo)).toEqual(before);
  });

  it("rotates the data key: new packs use the new epoch, old and new snapshots restore byte-identical", async () => {
    const { dir, repo, src, snapshot: first } = await repoWithBackup();
    const firstFiles = { random: readFileSync(path.join(src, "random.bin")), notes: readFileSync(path.join(src, "notes.txt")) };
    const before = dataAndIndex(repo);
    const snapshotsBefore = new Set(readdirSync(path.join(repo, "snapshots")));

    expect(JSON.parse((await cairnOk(["key", "rotate", "-r", repo, "--json"])).stdout)).toEqual({ epoch: 1 });
    expect(dataAndIndex(repo)).toEqual(before);

    writeFileSync(path.join(src, "random.bin"), randomBytes(1024 * 1024 + 7));
    writeFileSync(path.join(src, "more.bin"), randomBytes(600 * 1024));
    const second = JSON.parse((await cairnOk(["backup", "-r", repo, "--json", src])).stdout).id as string;
    const secondFiles = { random: readFileSync(path.join(src, "random.bin")), more: readFileSync(path.join(src, "more.bin")) };

    const after = dataAndIndex(repo);
    for (const [file, hash] of before) expect(after.get(file)).toBe(hash);
    const newPacks = [...after.keys()].filter((f) => f.startsWith("data/") && !before.has(f));
    const newUnpacked = [
      ...[...after.keys()].filter((f) => f.startsWith("index/") && !before.has(f)),
      ...readdirSync(path.join(repo, "snapshots")).filter((id) => !snapshotsBefore.has(id)).map((id) => `snapshots/${id}`),
    ];
    expect(newPacks.length).toBeGreaterThan(0);
    expect(newUnpacked.length).toBe(2);

    // Read the envelope headers directly: bytes 2-5 of every encrypted object are its epoch (u32 LE).
    const opened = await Repository.open(new LocalBackend(repo), PASSWORD, { threads: 0 });
    try {
      for (const f of newPacks) {
        const pack = readFileSync(path.join(repo, f));
        const headerLen = pack.readUInt32LE(pack.length - 4);
        expect(pack.readUInt32LE(pack.length - 4 - headerLen + 2)).toBe(1);
        const entries = readPackHeader(pack, opened.keyFor);
        expect(entries.length).toBeGreaterThan(0);
        for (const e of entries) expect(pack.readUInt32LE(e.offset + 2)).toBe(1);
      }
      for (const f of before.keys()) {
        if (f.startsWith("data/")) expect(readFileSync(path.join(repo, f)).readUInt32LE(2)).toBe(0);
      }
    } finally {
      await opened.close();
    }
    for (const f of newUnpacked) expect(readFileSync(path.join(repo, f)).readUInt32LE(2)).toBe(1);

    const target1 = path.join(dir, "restore1");
    const target2 = path.join(dir, "restore2");
    await cairnOk(["restore", "-r", repo, first, "--target", target1]);
    await cairnOk(["restore", "-r", repo, second, "--target", target2]);
    const in1 = path.join(target1, src);
    const in2 = path.join(target2, src);
    expect(readFileSync(path.join(in1, "random.bin")).equals(firstFiles.random)).toBe(true);
    expect(readFileSync(path.join(in1, "notes.txt")).equals(firstFiles.notes)).toBe(true);
    expect(readdirSync(in1).sort()).toEqual(["notes.txt", "random.bin"]);
    expect(readFileSync(path.join(in2, "random.bin")).equals(secondFiles.random)).toBe(true);
    expect(readFileSync(path.join(in2, "more.bin")).equals(secondFiles.more)).toBe(true);
  });

  it("creates and opens a repository whose key uses argon2id", async () => {
    const { repo, snapshot } = await repoWithBackup(["--kdf", "argon2id"]);
    const [only] = await keys(repo);
    expect(only.kdf).toMatchObject({ name: "argon2id", memoryKiB: 65536, iterations: 3, parallelism: 1 });
    expect(await snapshotIds(repo, PASSWORD)).toEqual([snapshot]);
    expect((await cairn(["snapshots", "-r", repo], { env: { CAIRN_PASSWORD: "not the password" } })).code).toBe(12);
  });
});
