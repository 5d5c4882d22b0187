import type { ChildProcess } from "node:child_process";
import { createCipheriv, createHash } from "node:crypto";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mapLimit } from "../engine/concurrency.js";
import { BackendError, type Backend } from "./backend.js";
import { RetryBackend } from "./retry.js";

/** A fresh, empty location for one test, and how to remove it. */
export interface BackendUnderTest {
  backend: Backend;
  cleanup: () => Promise<void>;
}

export interface ConformanceOptions {
  /**
   * Starts another process that puts `bytes` bytes under `key` into the location of
   * `backend`. The suite kills it with SIGKILL once `writing()` reports bytes in flight.
   */
  killableWriter?: {
    spawn(backend: Backend, key: string, bytes: number): ChildProcess;
    writing(backend: Backend): Promise<boolean>;
  };
  /** The backend keeps objects in this process's memory, so a put necessarily holds a copy. */
  inMemory?: boolean;
}

const MiB = 1024 * 1024;

/**
 * Deterministic pseudo-random bytes: part `index` of the stream named `seed`
 * (AES-CTR keystream, so 100 MiB takes a fraction of a second and can be made again).
 */
export function deterministicPart(seed: string, index: number, length: number): Buffer {
  const key = createHash("sha256").update(seed).digest();
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(index, 0);
  return createCipheriv("aes-256-ctr", key, iv).update(Buffer.alloc(length));
}

const sha256 = (parts: readonly Uint8Array[]) => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest("hex");
};

async function collect(iter: AsyncIterable<{ key: string; size: number }>): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  for await (const o of iter) {
    expect(seen.has(o.key), `list yielded ${o.key} twice`).toBe(false);
    seen.set(o.key, o.size);
  }
  return seen;
}

async function rejection(p: Promise<unknown>): Promise<BackendError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, "expected the call to fail").toBeInstanceOf(BackendError);
  return err as BackendError;
}

/** V8's collector, made callable without restarting the test process with --expose-gc. */
function collector(): (options?: { type: "major" | "minor" }) => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as (options?: { type: "major" | "minor" }) => void;
}

/**
 * Highest growth of array-buffer memory (Buffers live outside the JS heap) held while `fn`
 * runs. Each sample follows a young-generation collection, so it counts the buffers still
 * referenced, not the dead ones V8 has yet to collect: a transport's per-packet buffers
 * pile up as garbage (Node 24 let tens of MiB of dead 32 KiB buffers wait), while a second
 * copy of the object is referenced and still counted.
 */
async function bufferGrowth<T>(fn: () => Promise<T>): Promise<{ value: T; growth: number }> {
  const collect = collector();
  collect();
  const base = process.memoryUsage().arrayBuffers;
  let peak = base;
  const sample = () => {
    collect({ type: "minor" });
    peak = Math.max(peak, process.memoryUsage().arrayBuffers);
  };
  const timer = setInterval(sample, 5);
  try {
    const value = await fn();
    sample();
    return { value, growth: peak - base };
  } finally {
    clearInterval(timer);
  }
}

/**
 * The contract of backends/backend.ts as tests. Every backend runs this suite
 * against a real location; `makeBackend` gives each test an empty one.
 */
export function runBackendConformance(name: string, makeBackend: () => Promise<BackendUnderTest>, options: ConformanceOptions = {}): void {
  describe(`${name} backend conformance`, () => {
    let under: BackendUnderTest;
    let b: Backend;
    beforeEach(async () => {
      under = await makeBackend();
      b = under.backend;
    });
    afterEach(async () => {
      await under.cleanup();
    });

    it("stores a body given in parts as one object, in order, and replaces it whole", async () => {
      const parts = [Buffer.from("first part|"), new Uint8Array(0), deterministicPart("parts", 1, 70_000), Buffer.from("|last")];
      await b.put("dir/sub/object", parts);
      expect((await b.get("dir/sub/object")).equals(Buffer.concat(parts))).toBe(true);
      expect(await b.stat("dir/sub/object")).toEqual({ key: "dir/sub/object", size: 11 + 70_000 + 5 });
      expect(await b.exists("dir/sub/object")).toBe(true);

      await b.put("dir/sub/object", Buffer.from("short"));
      expect((await b.get("dir/sub/object")).toString()).toBe("short");
      expect((await b.stat("dir/sub/object")).size).toBe(5);

      await b.put("empty", new Uint8Array(0));
      expect((await b.get("empty")).length).toBe(0);
      expect((await b.stat("empty")).size).toBe(0);
    });

    it("a staged object is invisible until committed, then whole under its key; an aborted one leaves nothing", async (ctx) => {
      if (!b.stage) return ctx.skip();
      const parts = [Buffer.from("head|"), deterministicPart("staged", 0, 70_000), Buffer.from("|tail")];
      const staged = await b.stage("stage-dir");
      for (const p of parts) await staged.write(p);
      const listed = async () => {
        const keys: string[] = [];
        for (const prefix of ["stage-dir/", "other/"]) for await (const o of b.list(prefix)) keys.push(o.key);
        return keys;
      };
      expect(await listed()).toEqual([]);
      await staged.commit("other/dir/object");
      expect((await b.get("other/dir/object")).equals(Buffer.concat(parts))).toBe(true);
      await staged.abort();
      expect(await b.exists("other/dir/object")).toBe(true);
      await expect(staged.write(Buffer.from("late"))).rejects.toThrow();

      const dropped = await b.stage("stage-dir");
      await dropped.write(parts[1]);
      await dropped.abort();
      await dropped.abort();
      expect(await listed()).toEqual(["other/dir/object"]);
    });

    it("returns exactly the bytes of a range, and refuses a range past the end", async () => {
      const data = deterministicPart("ranges", 0, 300_000);
      await b.put("ranged", [data.subarray(0, 100_000), data.subarray(100_000)]);
      for (const [offset, length] of [[0, 1], [99_990, 20], [123_456, 100_000], [299_999, 1], [0, 300_000]]) {
        const got = await b.get("ranged", { offset, length });
        expect(got.equals(data.subarray(offset, offset + length)), `range ${offset}+${length}`).toBe(true);
      }
      expect((await rejection(b.get("ranged", { offset: 299_999, length: 2 }))).kind).toBe("permanent");
      expect((await rejection(b.get("ranged", { offset: 400_000, length: 10 }))).kind).toBe("permanent");
    });

    it("classifies a missing key as not-found on get, ranged get and stat; delete is idempotent", async () => {
      expect((await rejection(b.get("missing/key"))).kind).toBe("not-found");
      expect((await rejection(b.get("missing/key", { offset: 0, length: 1 }))).kind).toBe("not-found");
      expect((await rejection(b.stat("missing/key"))).kind).toBe("not-found");
      expect(await b.exists("missing/key")).toBe(false);
      await b.delete("missing/key");

      await b.put("doomed/x", Buffer.from("x"));
      await b.delete("doomed/x");
      await b.delete("doomed/x");
      expect(await b.exists("doomed/x")).toBe(false);
      expect((await rejection(b.get("doomed/x"))).kind).toBe("not-found");
      expect(await collect(b.list("doomed/"))).toEqual(new Map());
    });

    it("lists every key under a prefix with its size, nested ones included, and nothing else", async () => {
      const objects: Record<string, number> = { "p/a/1": 1, "p/a/2": 22, "p/ab/3": 333, "p/b/x/4": 4444, "q/5": 5 };
      for (const [key, size] of Object.entries(objects)) await b.put(key, Buffer.alloc(size, 7));
      expect(await collect(b.list("p/a/"))).toEqual(new Map([["p/a/1", 1], ["p/a/2", 22]]));
      expect(await collect(b.list("p/"))).toEqual(new Map(Object.entries(objects).filter(([k]) => k.startsWith("p/"))));
      expect(await collect(b.list("nothing/"))).toEqual(new Map());
    });

    it("lists past 1,000 keys (the page size of most object stores)", async () => {
      const keys = Array.from({ length: 1_100 }, (_, i) => `many/${String(i).padStart(4, "0")}`);
      await mapLimit(keys, 32, (key) => b.put(key, Buffer.from(key)));
      await b.put("other/outside", Buffer.from("x"));
      const listed = await collect(b.list("many/"));
      expect(listed.size).toBe(1_100);
      expect([...listed.keys()].sort()).toEqual(keys);
      expect([...listed.values()].every((size) => size === 9)).toBe(true);
    });

    it("never shows a reader part of an object while it is being written or replaced", async () => {
      const first = Array.from({ length: 24 }, (_, i) => deterministicPart("atomic-1", i, MiB));
      const second = Array.from({ length: 20 }, (_, i) => deterministicPart("atomic-2", i, MiB));
      const whole = new Map([[sha256(first), 24 * MiB], [sha256(second), 20 * MiB]]);
      const observe = async (done: () => boolean, allowMissing: boolean) => {
        let observations = 0;
        do {
          const [got, listed] = await Promise.all([
            b.get("atomic/object").catch((e: unknown) => e),
            collect(b.list("atomic/")).catch((e: unknown) => e),
          ]);
          if (got instanceof Buffer) expect(whole.get(sha256([got])), "a get saw a partial object").toBe(got.length);
          else {
            expect(allowMissing, `get failed: ${String(got)}`).toBe(true);
            expect((got as BackendError).kind).toBe("not-found");
          }
          expect(listed).toBeInstanceOf(Map);
          for (const [key, size] of listed as Map<string, number>) {
            expect(key).toBe("atomic/object");
            expect([...whole.values()]).toContain(size);
          }
          observations++;
        } while (!done());
        return observations;
      };
      let finished = false;
      const [, seen] = await Promise.all([b.put("atomic/object", first).finally(() => (finished = true)), observe(() => finished, true)]);
      expect(seen).toBeGreaterThan(0);
      finished = false;
      await Promise.all([b.put("atomic/object", second).finally(() => (finished = true)), observe(() => finished, false)]);
      expect(sha256([await b.get("atomic/object")])).toBe(sha256(second));
    });

    if (options.killableWriter) {
      const writer = options.killableWriter;
      it("leaves a key absent or whole when the writing process is killed part way", async () => {
        const bytes = 256 * MiB;
        const child = writer.spawn(b, "killed/object", bytes);
        const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
        let killed = false;
        for (let i = 0; i < 2_000 && child.exitCode === null; i++) {
          if (await writer.writing(b)) {
            killed = child.kill("SIGKILL");
            break;
          }
          await new Promise((r) => setTimeout(r, 5));
        }
        await exited;
        expect(killed, "the writer finished or never started writing before it could be killed").toBe(true);
        const listed = await collect(b.list("killed/"));
        if (await b.exists("killed/object")) {
          expect((await b.stat("killed/object")).size).toBe(bytes);
          expect(listed).toEqual(new Map([["killed/object", bytes]]));
        } else {
          expect(listed).toEqual(new Map());
        }
        await b.put("killed/object", Buffer.from("written again"));
        expect((await b.get("killed/object")).toString()).toBe("written again");
      });
    }

    // Many requests at once may meet a reset connection (a server under load, a keep-alive
    // socket closed as it was reused). The contract is that such a failure is classified
    // transient, so the retry layer Cairn puts around every destination lands the put; a
    // permanent error, or a put that is acknowledged and lost, still fails these tests.
    const retrying = () => new RetryBackend(b, { initialDelayMs: 50, maxDelayMs: 500 });

    it("lands every one of many parallel puts of different keys", async () => {
      const keys = Array.from({ length: 64 }, (_, i) => `parallel/${i}`);
      const caller = retrying();
      await Promise.all(keys.map((key, i) => caller.put(key, deterministicPart("parallel", i, 64 * 1024))));
      const got = await Promise.all(keys.map((key) => b.get(key)));
      got.forEach((bytes, i) => expect(bytes.equals(deterministicPart("parallel", i, 64 * 1024)), keys[i]).toBe(true));
    });

    it("keeps one whole value when parallel puts race on the same key", async () => {
      const values = Array.from({ length: 8 }, (_, i) => [deterministicPart("race", i, MiB), deterministicPart("race-tail", i, MiB + i)]);
      const caller = retrying();
      await Promise.all(values.map((v) => caller.put("raced/object", v)));
      const got = await b.get("raced/object");
      expect(values.map((v) => sha256(v))).toContain(sha256([got]));
      expect(await collect(b.list("raced/"))).toEqual(new Map([["raced/object", got.length]]));
    });

    it("stores and reads back an object over 100 MiB without a second copy in memory", async () => {
      const partSize = MiB;
      const count = 101;
      const size = count * partSize + 4321;
      const partAt = (i: number) => deterministicPart("large", i, i < count ? partSize : 4321);
      let parts: Buffer[] | undefined = Array.from({ length: count + 1 }, (_, i) => partAt(i));
      const expected = sha256(parts);
      const put = await bufferGrowth(() => b.put("large/object", parts!));
      parts = undefined;
      if (!options.inMemory) expect(put.growth, "put held a second copy of the object").toBeLessThan(size / 2);
      expect((await b.stat("large/object")).size).toBe(size);

      const whole = await bufferGrowth(() => b.get("large/object"));
      expect(whole.value.length).toBe(size);
      expect(sha256([whole.value])).toBe(expected);
      expect(whole.growth, "get held the object twice").toBeLessThan(size * 1.5);

      const across = await b.get("large/object", { offset: 50 * partSize - 10, length: partSize + 20 });
      expect(across.equals(Buffer.concat([partAt(49).subarray(-10), partAt(50), partAt(51).subarray(0, 10)]))).toBe(true);
      const tail = await b.get("large/object", { offset: size - 5000, length: 5000 });
      expect(tail.equals(Buffer.concat([partAt(count - 1).subarray(-679), partAt(count)]))).toBe(true);
    });
  });
}

/**
 * The contract of a backend whose objects live in a bucket or container: a missing
 * one reads as empty, refuses writes with a message saying what to do, and
 * ensureContainer() creates it (and is idempotent).
 */
export async function expectContainerCreatedOnDemand(backend: Backend & { ensureContainer(): Promise<void> }, word: "bucket" | "container"): Promise<void> {
  expect(await backend.exists("config")).toBe(false);
  const err = await backend.put("config", Buffer.from("x")).catch((e: unknown) => e);
  expect(err).toMatchObject({ kind: "permanent" });
  expect((err as Error).message).toContain(`the ${word} does not exist; create it with "cairn init"`);
  await backend.ensureContainer();
  await backend.ensureContainer();
  await backend.put("config", Buffer.from("x"));
  expect(await backend.exists("config")).toBe(true);
}
