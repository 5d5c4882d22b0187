import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { DeleteObjectCommand, HeadObjectCommand, ListObjectVersionsCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, describe, expect, it } from "vitest";
import { S3Backend } from "../backends/s3.js";
import { objectLockFrom } from "../backends/url.js";
import { cairn, cairnOk, tempDir } from "./helpers.js";
import { startMinio } from "./servers.js";

const minio = await startMinio();
const DAY_MS = 24 * 60 * 60 * 1000;

const sha = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");

describe("immutable repository on S3 Object Lock (MinIO)", () => {
  afterAll(async () => {
    await minio.stop();
  });

  it("reads the retention from CAIRN_S3_OBJECT_LOCK_DAYS / _MODE and refuses nonsense", () => {
    expect(objectLockFrom({})).toBeUndefined();
    expect(objectLockFrom({ CAIRN_S3_OBJECT_LOCK_DAYS: "30" })).toEqual({ mode: "GOVERNANCE", days: 30 });
    expect(objectLockFrom({ CAIRN_S3_OBJECT_LOCK_DAYS: "7", CAIRN_S3_OBJECT_LOCK_MODE: "compliance" })).toEqual({ mode: "COMPLIANCE", days: 7 });
    expect(() => objectLockFrom({ CAIRN_S3_OBJECT_LOCK_DAYS: "1.5" })).toThrow(/whole number of days/);
    expect(() => objectLockFrom({ CAIRN_S3_OBJECT_LOCK_DAYS: "1", CAIRN_S3_OBJECT_LOCK_MODE: "strict" })).toThrow(/governance or compliance/);
  });

  it("keeps backups whole against a client with delete rights; prune and forget report what the lock keeps; lock files stay deletable", async () => {
    const tmp = tempDir("cairn-objlock-");
    // MinIO's root user: it may delete and overwrite anything Object Lock allows.
    const admin = new S3Client({
      region: "us-east-1",
      endpoint: minio.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: minio.accessKeyId, secretAccessKey: minio.secretAccessKey },
    });
    const bucket = `cairn-lock-${randomBytes(6).toString("hex")}`;
    const repo = `s3:${minio.endpoint}/${bucket}/repo`;
    const env = { AWS_ACCESS_KEY_ID: minio.accessKeyId, AWS_SECRET_ACCESS_KEY: minio.secretAccessKey, AWS_REGION: "us-east-1" };
    const versions = async (prefix: string) => {
      const page = await admin.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: `repo/${prefix}` }));
      return { versions: page.Versions ?? [], markers: page.DeleteMarkers ?? [] };
    };
    const firstKey = async (prefix: string) => (await versions(prefix)).versions[0];
    try {
      const src = path.join(tmp.dir, "src");
      mkdirSync(src);
      writeFileSync(path.join(src, "old.bin"), randomBytes(2 * 1024 * 1024));
      await cairnOk(["-r", repo, "init", "--object-lock-days", "1", "--object-lock-mode", "compliance"], { env });
      await cairnOk(["-r", repo, "backup", src], { env });
      // A second backup after the first finished: its lock file was deleted, nothing blocks.
      rmSync(path.join(src, "old.bin"));
      writeFileSync(path.join(src, "new.bin"), randomBytes(3 * 1024 * 1024 + 5));
      writeFileSync(path.join(src, "notes.txt"), "immutable backups survive a stolen key\n".repeat(3000));
      await cairnOk(["-r", repo, "backup", src], { env });
      const locks = await versions("locks/");
      expect(locks.versions).toEqual([]);
      expect(locks.markers).toEqual([]);

      // Every kind of repository object carries the retention Cairn asked for.
      const targets = { pack: await firstKey("data/"), index: await firstKey("index/"), snapshot: await firstKey("snapshots/") };
      for (const prefix of ["config", "keys/", "data/", "index/", "snapshots/"]) {
        const v = await firstKey(prefix);
        const head = await admin.send(new HeadObjectCommand({ Bucket: bucket, Key: v.Key, VersionId: v.VersionId }));
        expect(head.ObjectLockMode, prefix).toBe("COMPLIANCE");
        expect(head.ObjectLockRetainUntilDate!.getTime(), prefix).toBeGreaterThan(Date.now() + DAY_MS / 2);
      }

      // The attack: delete the versions, then overwrite and hide what is left.
      for (const [what, v] of Object.entries(targets)) {
        const refused = await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: v.Key, VersionId: v.VersionId })).catch((e: Error) => e);
        expect(refused, what).toBeInstanceOf(Error);
        await admin.send(new PutObjectCommand({ Bucket: bucket, Key: v.Key, Body: randomBytes(v.Size ?? 100) }));
      }
      await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: targets.snapshot.Key }));

      await cairnOk(["-r", repo, "check", "--read-data"], { env });
      const snapshots = JSON.parse((await cairnOk(["-r", repo, "snapshots", "--json"], { env })).stdout) as { id: string }[];
      expect(snapshots).toHaveLength(2);
      const target = path.join(tmp.dir, "restore");
      await cairnOk(["-r", repo, "restore", "latest", "--target", target], { env });
      for (const name of ["new.bin", "notes.txt"]) expect(sha(path.join(target, src, name)), name).toBe(sha(path.join(src, name)));

      // What an interrupted backup leaves: an unreferenced pack, still under retention.
      const leftover = randomBytes(32).toString("hex");
      await admin.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: `repo/data/${leftover.slice(0, 2)}/${leftover}`,
          Body: randomBytes(4096),
          ObjectLockMode: "COMPLIANCE",
          ObjectLockRetainUntilDate: new Date(Date.now() + DAY_MS),
        }),
      );

      // forget cannot remove the older snapshot yet, and says so instead of failing.
      const forget = JSON.parse((await cairnOk(["-r", repo, "forget", "--keep-last", "1", "--json"], { env })).stdout);
      expect(forget.removed).toEqual([]);
      expect(Object.keys(forget.lockedUntil)).toHaveLength(1);
      expect(Date.parse(forget.lockedUntil[Object.keys(forget.lockedUntil)[0]])).toBeGreaterThan(Date.now());
      const forgetText = await cairnOk(["-r", repo, "forget", "--keep-last", "1"], { env });
      expect(forgetText.stdout).toMatch(/cannot be removed until .*object lock/);

      const prune = JSON.parse((await cairnOk(["-r", repo, "prune", "--json"], { env })).stdout);
      expect(prune.immutable).toBe(true);
      expect(prune.packs.repacked).toBe(0);
      expect(prune.keptByLock.packs).toBe(1);
      expect(Date.parse(prune.keptByLock.until)).toBeGreaterThan(Date.now());
      expect((await versions(`data/${leftover.slice(0, 2)}/${leftover}`)).versions).toHaveLength(1);
      const pruneText = await cairnOk(["-r", repo, "prune"], { env });
      expect(pruneText.stdout).toMatch(/1 pack \(.*\) kept until .* by object lock/);
      await cairnOk(["-r", repo, "check", "--read-data"], { env });
      expect(await versions("locks/")).toEqual({ versions: [], markers: [] });

      // A delete that ignores the lock fails for good, saying until when.
      const backend = new S3Backend({ endpoint: minio.endpoint, forcePathStyle: true, bucket, prefix: "repo", accessKeyId: minio.accessKeyId, secretAccessKey: minio.secretAccessKey });
      const refused = await backend.delete(targets.snapshot.Key!.slice("repo/".length)).catch((e: unknown) => e);
      await backend.close();
      expect(refused).toMatchObject({ kind: "permanent", message: expect.stringMatching(/under retention until .*Object Lock/) });
      expect((refused as { retainedUntil?: Date }).retainedUntil!.getTime()).toBeGreaterThan(Date.now());

      // Object Lock can only be had on a new bucket: an existing one without it is refused with what to do.
      const plain = await cairn(["-r", `s3:${minio.endpoint}/${bucket}-plain`, "init"], { env });
      expect(plain.code).toBe(0);
      const refusedInit = await cairn(["-r", `s3:${minio.endpoint}/${bucket}-plain/other`, "init", "--object-lock-days", "1"], { env });
      expect(refusedInit.code).toBe(1);
      expect(refusedInit.stderr).toContain("exists without Object Lock");
    } finally {
      admin.destroy();
      tmp.cleanup();
    }
  }, 180_000);
});
