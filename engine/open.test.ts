import { describe, expect, it } from "vitest";
import { MemBackend } from "../backends/mem.js";
import { LockedError, WrongPasswordError } from "./errors.js";
import { RepositoryLock } from "./locks.js";
import { openRepositoryAt, withLock, withRepositoryAt } from "./open.js";
import { Repository } from "./repository.js";

const FAST_KDF = { name: "scrypt" as const, N: 1024, r: 8, p: 1 };

/** A memory backend that counts how often it was closed. */
class ClosingBackend extends MemBackend {
  closed = 0;
  async close(): Promise<void> {
    this.closed++;
  }
}

async function created(): Promise<ClosingBackend> {
  const backend = new ClosingBackend();
  await (await Repository.init(backend, "pw", { kdf: FAST_KDF, threads: 0 })).close();
  backend.closed = 0;
  return backend;
}

const lockFiles = async (backend: MemBackend) => {
  const keys: string[] = [];
  for await (const o of backend.list("locks/")) keys.push(o.key);
  return keys;
};

describe("opening and locking a repository", () => {
  it("holds the lock while the work runs, then releases it and closes the backend, also when the work fails", async () => {
    const backend = await created();
    let seen: string[] = [];
    await expect(
      withRepositoryAt(backend, "pw", { threads: 0, lock: { exclusive: true, operation: "prune" } }, async () => {
        seen = await lockFiles(backend);
        throw new Error("the work failed");
      }),
    ).rejects.toThrow("the work failed");
    expect(seen).toHaveLength(1);
    expect(await lockFiles(backend)).toEqual([]);
    expect(backend.closed).toBe(1);
  });

  it("closes the backend when the password opens no key", async () => {
    const backend = await created();
    await expect(withRepositoryAt(backend, "wrong", { threads: 0 }, async () => "never")).rejects.toBeInstanceOf(WrongPasswordError);
    await expect(openRepositoryAt(backend, "wrong", { threads: 0 })).rejects.toBeInstanceOf(WrongPasswordError);
    expect(backend.closed).toBe(2);
  });

  it("does not run the work when the lock is taken, and still closes", async () => {
    const backend = await created();
    const other = await Repository.open(backend, "pw", { threads: 0 });
    const held = await RepositoryLock.acquire(other, { exclusive: true, operation: "prune" });
    let ran = false;
    await expect(
      withRepositoryAt(backend, "pw", { threads: 0, lock: { exclusive: false, operation: "backup" } }, async () => {
        ran = true;
      }),
    ).rejects.toBeInstanceOf(LockedError);
    expect(ran).toBe(false);
    expect(backend.closed).toBe(1);
    await held.release();
    await other.close();
  });

  it("takes no lock when none is asked for, and withLock leaves the repository open", async () => {
    const backend = await created();
    const repo = await openRepositoryAt(backend, "pw", { threads: 0 });
    expect(await withRepositoryAt(backend, "pw", { threads: 0 }, async () => lockFiles(backend))).toEqual([]);
    expect(await withLock(repo, { exclusive: false, operation: "check" }, () => lockFiles(backend))).toHaveLength(1);
    expect(await lockFiles(backend)).toEqual([]);
    expect(backend.closed).toBe(1);
    await repo.close();
    expect(backend.closed).toBe(2);
  });
});
