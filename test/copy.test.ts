import { randomBytes } from "node:crypto";
import { mkdirSync, openSync, writeFileSync, writeSync, closeSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CopyResult } from "../engine/copy.js";
import { cairn, cairnOk, tempDir } from "./helpers.js";
import { startMinio, startSshd, type Sshd, type TestServer } from "./servers.js";
import { digestTree } from "./tree-fixtures.js";

const SOURCE_PASSWORD = "the source repository's own password";


/** About 12 MiB of incompressible files plus a little text. */
function makeSource(src: string): void {
  mkdirSync(path.join(src, "docs"), { recursive: true });
  writeFileSync(path.join(src, "disk.img"), randomBytes(8 * 1024 * 1024));
  writeFileSync(path.join(src, "photos.bin"), randomBytes(4 * 1024 * 1024 + 123));
  writeFileSync(path.join(src, "docs", "notes.txt"), "a copy in another place is a backup\n".repeat(3000));
}

/** Overwrites 5% of the data (600 KiB in the middle of disk.img). */
function changeFivePercent(src: string): void {
  const fd = openSync(path.join(src, "disk.img"), "r+");
  writeSync(fd, randomBytes(600 * 1024), 0, 600 * 1024, 4 * 1024 * 1024);
  closeSync(fd);
}

const fromEnv = (a: string) => ({ env: { CAIRN_FROM_PASSWORD: SOURCE_PASSWORD }, args: ["--from-repo", a] });

async function copy(b: string, a: string, env: Record<string, string> = {}, refs: string[] = []): Promise<CopyResult> {
  const f = fromEnv(a);
  const r = await cairnOk(["-r", b, "copy", ...f.args, ...refs, "--json"], { env: { ...f.env, ...env } });
  return JSON.parse(r.stdout) as CopyResult;
}

async function restoredDigest(repo: string, ref: string, target: string, src: string, env: Record<string, string> = {}): Promise<Record<string, string>> {
  await cairnOk(["-r", repo, "restore", ref, "--target", target], { env });
  return digestTree(path.join(target, src));
}

describe.each([
  { name: "sharing the source's chunker parameters and id key", shared: true, init: (a: string) => ["--copy-chunker-params", ...fromEnv(a).args] },
  { name: "with its own keys (ids are translated)", shared: false, init: () => [] },
])("cairn copy between local repositories, destination $name", ({ shared, init }) => {
  const tmp = tempDir("cairn-copy-");
  const a = path.join(tmp.dir, "a");
  const b = path.join(tmp.dir, "b");
  const src = path.join(tmp.dir, "src");
  const sourceEnv = { env: { CAIRN_PASSWORD: SOURCE_PASSWORD } };
  afterAll(() => tmp.cleanup());

  beforeAll(async () => {
    makeSource(src);
    await cairnOk(["-r", a, "init"], sourceEnv);
    await cairnOk(["-r", a, "backup", src], sourceEnv);
    const r = await cairnOk(["-r", b, "init", ...init(a), "--json"], { env: { CAIRN_FROM_PASSWORD: SOURCE_PASSWORD } });
    expect(JSON.parse(r.stdout).location).toBe(b);
  });

  it("copies every snapshot, and the copy restores byte-identical and checks clean", async () => {
    const first = await copy(b, a);
    expect(first.copied).toHaveLength(1);
    expect(first.skipped).toHaveLength(0);
    expect(first.sharedIdKey).toBe(shared);
    expect(first.snapshotBytes).toBeGreaterThan(12 * 1024 * 1024);
    // Random data does not compress: what lands is about the snapshot's size.
    expect(first.bytesSent).toBeGreaterThan(12 * 1024 * 1024);
    const snaps = JSON.parse((await cairnOk(["-r", b, "snapshots", "--json"])).stdout);
    expect(snaps).toHaveLength(1);
    expect(snaps[0].paths).toEqual([src]);
    expect(await restoredDigest(b, "latest", path.join(tmp.dir, "restore1"), src)).toEqual(digestTree(src));
    await cairnOk(["-r", b, "check", "--read-data"]);
  });

  it("a second copy finds the snapshot there and sends nothing", async () => {
    const again = await copy(b, a);
    expect(again.copied).toHaveLength(0);
    expect(again.skipped).toHaveLength(1);
    expect(again.blobsSent).toBe(0);
    expect(again.bytesSent).toBe(0);
  });

  it("after a 5% change and a new backup, sends about the changed data only", async () => {
    changeFivePercent(src);
    await cairnOk(["-r", a, "backup", src], sourceEnv);
    const next = await copy(b, a);
    expect(next.copied).toHaveLength(1);
    expect(next.skipped).toHaveLength(1);
    expect(next.bytesSent).toBeGreaterThan(0);
    // 600 KiB changed: only the chunks around it (1 MiB on average each) and new trees go, not the 12 MiB snapshot.
    expect(next.bytesSent).toBeLessThan(next.snapshotBytes * 0.5);
    const snaps = JSON.parse((await cairnOk(["-r", b, "snapshots", "--json"])).stdout);
    expect(snaps).toHaveLength(2);
    // The copied child names its copied parent, not the source's snapshot id.
    expect(snaps[1].parent).toBe(snaps[0].id);
    expect(await restoredDigest(b, "latest", path.join(tmp.dir, "restore2"), src)).toEqual(digestTree(src));
    await cairnOk(["-r", b, "check", "--read-data"]);
  });
});

describe("cairn copy refuses what it cannot do", () => {
  const tmp = tempDir("cairn-copy-");
  afterAll(() => tmp.cleanup());

  it("says how to give the source password, and refuses to copy a repository into itself", async () => {
    const a = path.join(tmp.dir, "a");
    await cairnOk(["-r", a, "init"]);
    const noPassword = await cairn(["-r", a, "copy", "--from-repo", a], { env: { CAIRN_FROM_PASSWORD: undefined } });
    expect(noPassword.code).toBe(1);
    expect(noPassword.stderr).toContain("CAIRN_FROM_PASSWORD");
    const self = await cairn(["-r", a, "copy", "--from-repo", a], { env: { CAIRN_FROM_PASSWORD: "correct horse battery staple" } });
    expect(self.code).toBe(1);
    expect(self.stderr).toContain("the source and destination are the same repository");
  });
});

/** Copies a local repository to `b`, then checks the copy by reading all its data and restoring it. */
async function expectCopyTo(b: string, env: Record<string, string>): Promise<void> {
  const tmp = tempDir("cairn-copy-");
  try {
    const a = path.join(tmp.dir, "a");
    const src = path.join(tmp.dir, "src");
    mkdirSync(src);
    writeFileSync(path.join(src, "data.bin"), randomBytes(3 * 1024 * 1024 + 5));
    writeFileSync(path.join(src, "notes.txt"), "offsite\n".repeat(1000));
    await cairnOk(["-r", a, "init"], { env: { CAIRN_PASSWORD: SOURCE_PASSWORD } });
    await cairnOk(["-r", a, "backup", src], { env: { CAIRN_PASSWORD: SOURCE_PASSWORD } });
    const f = fromEnv(a);
    await cairnOk(["-r", b, "init", "--copy-chunker-params", ...f.args], { env: { ...env, ...f.env } });
    const result = await copy(b, a, env, ["latest"]);
    expect(result.copied).toHaveLength(1);
    expect(result.sharedIdKey).toBe(true);
    await cairnOk(["-r", b, "check", "--read-data"], { env });
    expect(await restoredDigest(b, "latest", path.join(tmp.dir, "restore"), src, env)).toEqual(digestTree(src));
    expect((await copy(b, a, env)).bytesSent).toBe(0);
  } finally {
    tmp.cleanup();
  }
}

describe("cairn copy to remote destinations", () => {
  let minio: TestServer & { endpoint: string; accessKeyId: string; secretAccessKey: string };
  let sshd: Sshd;
  beforeAll(async () => {
    [minio, sshd] = await Promise.all([startMinio(), startSshd()]);
  });
  afterAll(async () => {
    await minio?.stop();
    await sshd?.stop();
  });

  it("copies to MinIO (s3: URL)", async () => {
    await expectCopyTo(`s3:${minio.endpoint}/cairn-copy-${randomBytes(4).toString("hex")}/offsite`, {
      AWS_ACCESS_KEY_ID: minio.accessKeyId,
      AWS_SECRET_ACCESS_KEY: minio.secretAccessKey,
      AWS_REGION: "us-east-1",
    });
  });

  it("copies to an SSH server (sftp: URL)", async () => {
    await expectCopyTo(`sftp:${sshd.username}@127.0.0.1:${sshd.port}${path.join(sshd.dataDir, "copy")}`, {
      CAIRN_SFTP_KEY_FILE: sshd.clientKeyFile,
      CAIRN_SFTP_KNOWN_HOSTS: sshd.knownHostsFile,
    });
  });
});
