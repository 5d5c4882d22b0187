import { writeFileSync } from "node:fs";
import * as path from "node:path";
import { ApplicationFailure } from "@temporalio/common";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MemBackend } from "../backends/mem.js";
import { Archiver } from "../engine/archiver.js";
import { Repository } from "../engine/repository.js";
import { planHost } from "../engine/snapshot.js";
import { tempDir } from "../test/helpers.js";
import { PERMANENT_FAILURES, type BackupInput } from "../workflows/messages.js";
import { checkQuota, estimateAddedBytes, packBytes } from "./quota.js";

const FAST_KDF = { name: "scrypt" as const, N: 1024, r: 8, p: 1 };

describe("the quota check of a backup's prepare step", () => {
  let tmp: ReturnType<typeof tempDir>;
  let repo: Repository;
  let input: BackupInput;
  beforeEach(async () => {
    tmp = tempDir("cairn-quota-");
    writeFileSync(path.join(tmp.dir, "a.bin"), Buffer.alloc(30_000, 1));
    writeFileSync(path.join(tmp.dir, "b.bin"), Buffer.alloc(20_000, 2));
    repo = await Repository.init(new MemBackend(), "pw", { kdf: FAST_KDF, threads: 0 });
    input = { planId: "p1", planName: "www", repository: { id: "r1", url: "/x", sealedPassword: "x" }, source: { type: "files", paths: [tmp.dir] } };
  });
  afterEach(async () => {
    await repo.close();
    tmp.cleanup();
  });

  it("estimates a plan's first backup of files by the source's size on disk, and fails it when that passes the quota, saying what to do", async () => {
    expect(await estimateAddedBytes(repo, input, Infinity)).toMatchObject({ bytes: 50_000 });
    await expect(checkQuota(repo, { ...input, quotaBytes: 60_000 })).resolves.toBeUndefined();
    const err = await checkQuota(repo, { ...input, quotaBytes: 40_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).nonRetryable).toBe(true);
    expect((err as ApplicationFailure).type).toBe(PERMANENT_FAILURES.quotaExceeded);
    expect((err as Error).message).toContain("would pass repository r1's quota of 39.1 KiB (40000 bytes)");
    expect((err as Error).message).toContain("holds 0 B (0 bytes), 0% of it,");
    expect((err as Error).message).toMatch(/Raise the quota .* or free space/);
  });

  it("after a backup, counts the repository's packs and estimates by what the plan's last snapshot stored", async () => {
    await new Archiver(repo, { host: planHost("p1") }).backup([tmp.dir]);
    const used = await packBytes(repo);
    expect(used).toBeGreaterThan(0);
    const estimate = await estimateAddedBytes(repo, input, Infinity);
    expect(estimate.basis).toContain("the plan's last backup stored");
    expect(estimate.bytes).toBeGreaterThan(0);
    expect(estimate.bytes).toBeLessThanOrEqual(used);
    await expect(checkQuota(repo, { ...input, quotaBytes: used + estimate.bytes })).resolves.toBeUndefined();
    await expect(checkQuota(repo, { ...input, quotaBytes: used + estimate.bytes - 1 })).rejects.toThrow(/the plan's last backup stored/);
    // Another plan's snapshot is not this plan's history.
    expect((await estimateAddedBytes(repo, { ...input, planId: "p2" }, Infinity)).bytes).toBe(50_000);
  });
});
