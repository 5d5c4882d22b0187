import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { BackendError } from "../backends/backend.js";
import { FaultInjectingBackend } from "../backends/faults.js";
import { LocalBackend } from "../backends/local.js";
import { RetryBackend } from "../backends/retry.js";
import { Archiver } from "../engine/archiver.js";
import { checkRepository } from "../engine/checker.js";
import { Repository } from "../engine/repository.js";
import { Restorer } from "../engine/restorer.js";
import { loadSnapshots } from "../engine/snapshot.js";
import { PASSWORD, tempDir } from "./helpers.js";
import { digestTree } from "./tree-fixtures.js";

const FAST_KDF = { name: "scrypt" as const, N: 1024, r: 8, p: 1 };
/** Small chunks and packs, so a few MiB make many puts for the faults to hit. */
const SMALL = { packSize: 256 * 1024, chunker: { minSize: 16 * 1024, avgSize: 64 * 1024, maxSize: 256 * 1024, seed: randomBytes(32).toString("hex") } };
const QUICK_RETRIES = { attempts: 12, initialDelayMs: 2, maxDelayMs: 20 };


describe("backups through an unreliable destination", () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());
  const src = path.join(tmp.dir, "src");
  mkdirSync(path.join(src, "sub"), { recursive: true });
  writeFileSync(path.join(src, "random.bin"), randomBytes(3 * 1024 * 1024));
  writeFileSync(path.join(src, "text.txt"), "a line of text that compresses\n".repeat(50_000));
  for (let i = 0; i < 20; i++) writeFileSync(path.join(src, "sub", `small-${i}`), randomBytes(100 + i * 1000));

  it("complete through 20% transient failures and resets when retried, check clean and restore byte-identical", async () => {
    const inner = new LocalBackend(path.join(tmp.dir, "flaky-repo"));
    const faulty = new FaultInjectingBackend(inner, { seed: 20, transientRate: 0.2, resetRate: 0.05, latencyMs: 2 });
    const backend = new RetryBackend(faulty, QUICK_RETRIES);

    const repo = await Repository.init(backend, PASSWORD, { kdf: FAST_KDF, threads: 0, ...SMALL });
    const { snapshot } = await new Archiver(repo).backup([src]);
    await repo.close();

    const reopened = await Repository.open(backend, PASSWORD, { threads: 0 });
    const report = await checkRepository(reopened, { readData: true });
    expect(report.errors).toEqual([]);
    expect(report.packs).toBeGreaterThan(10);
    expect(report.packsRead).toBe(report.packs);
    const target = path.join(tmp.dir, "restored");
    await new Restorer(reopened, { target }).restore(snapshot.tree);
    await reopened.close();

    expect(digestTree(path.join(target, src))).toEqual(digestTree(src));
    expect(faulty.injected.transient).toBeGreaterThan(5);
    expect(faulty.injected.reset).toBeGreaterThan(0);
  });

  it("fail with a clear error when the destination goes down, and leave the repository consistent", async () => {
    const inner = new LocalBackend(path.join(tmp.dir, "down-repo"));
    await (await Repository.init(inner, PASSWORD, { kdf: FAST_KDF, threads: 0, ...SMALL })).close();
    const faulty = new FaultInjectingBackend(inner, { seed: 1 });
    const repo = await Repository.open(new RetryBackend(faulty, { attempts: 4, initialDelayMs: 2, maxDelayMs: 10 }), PASSWORD, { threads: 0 });

    faulty.faults.transientRate = 1;
    const err = await new Archiver(repo).backup([src]).catch((e: unknown) => e);
    await repo.close().catch(() => undefined);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as Error).message).toContain(`at ${inner.location} failed 4 times`);
    expect((err as Error).message).toContain("The destination may be down or unreachable");

    const healthy = await Repository.open(inner, PASSWORD, { threads: 0 });
    const report = await checkRepository(healthy, { readData: true });
    expect(report.errors).toEqual([]);
    expect(await loadSnapshots(healthy)).toEqual([]);
    await healthy.close();
  });
});
