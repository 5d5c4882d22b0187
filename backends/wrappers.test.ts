import { describe, expect, it } from "vitest";
import { BackendError, type Body, type ByteRange, type ObjectInfo } from "./backend.js";
import { FaultInjectingBackend, seededRandom } from "./faults.js";
import { LimitBackend } from "./limit.js";
import { MemBackend } from "./mem.js";
import { RetryBackend } from "./retry.js";

const FAST = { initialDelayMs: 1, maxDelayMs: 4 };

/** A MemBackend whose next `failures` operations fail with the given kind. */
class Failing extends MemBackend {
  calls = 0;
  constructor(public failures: number, readonly kind: BackendError["kind"] = "transient") {
    super();
  }
  private maybeFail(): void {
    this.calls++;
    if (this.failures > 0) {
      this.failures--;
      throw new BackendError(this.kind, `injected ${this.kind}`);
    }
  }
  override async put(key: string, body: Body): Promise<void> {
    this.maybeFail();
    return super.put(key, body);
  }
  override async get(key: string, range?: ByteRange): Promise<Buffer> {
    this.maybeFail();
    return super.get(key, range);
  }
}

describe("RetryBackend", () => {
  it("retries transient errors until the operation succeeds", async () => {
    const inner = new Failing(3);
    const retries: number[] = [];
    const b = new RetryBackend(inner, { ...FAST, attempts: 5, onRetry: (e) => retries.push(e.attempt) });
    await b.put("k", Buffer.from("v"));
    expect(inner.calls).toBe(4);
    expect(retries).toEqual([1, 2, 3]);
    expect((await b.get("k")).toString()).toBe("v");
  });

  it("retries each step of a staged object that fails transiently, and the object lands whole", async () => {
    const inner = new MemBackend();
    let calls = 0;
    const stage = inner.stage.bind(inner);
    inner.stage = async () => {
      const s = await stage();
      const flaky = <T>(step: () => Promise<T>) => () => {
        if (calls++ < 2) return Promise.reject(new BackendError("transient", "injected transient"));
        return step();
      };
      return { write: (p) => flaky(() => s.write(p))(), commit: (k) => flaky(() => s.commit(k))(), abort: () => s.abort() };
    };
    const b = new RetryBackend(inner, FAST);
    const staged = await b.stage!("data");
    await staged.write(Buffer.from("ab"));
    await staged.write(Buffer.from("cd"));
    await staged.commit("data/x");
    expect((await inner.get("data/x")).toString()).toBe("abcd");
    // Two failed tries, then the two writes and the commit.
    expect(calls).toBe(5);
  });

  it("offers staged objects only when the backend it wraps does", () => {
    expect(new RetryBackend(new MemBackend()).stage).toBeTypeOf("function");
    expect(new RetryBackend(new FaultInjectingBackend(new MemBackend(), { seed: 1 })).stage).toBeUndefined();
  });

  it("does not retry not-found or permanent errors", async () => {
    const missing = new Failing(0);
    await expect(new RetryBackend(missing, FAST).get("nope")).rejects.toMatchObject({ kind: "not-found" });
    const refused = new Failing(5, "permanent");
    await expect(new RetryBackend(refused, FAST).put("k", Buffer.from("v"))).rejects.toMatchObject({ kind: "permanent", message: "injected permanent" });
    expect(refused.calls).toBe(1);
  });

  it("gives up after the configured attempts with an error naming the destination and the count", async () => {
    const inner = new Failing(Infinity);
    const err = await new RetryBackend(inner, { ...FAST, attempts: 4 }).put("data/ab/abc", Buffer.from("v")).catch((e: unknown) => e);
    expect(inner.calls).toBe(4);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).kind).toBe("transient");
    expect((err as Error).message).toMatch(/^writing data\/ab\/abc at mem: failed 4 times in [\d.]+s, giving up: injected transient\. The destination may be down/);
  });

  it("stops retrying when the time budget is spent, whatever the attempts left", async () => {
    const inner = new Failing(Infinity);
    const b = new RetryBackend(inner, { attempts: 1000, initialDelayMs: 20, maxDelayMs: 20, maxElapsedMs: 50, random: () => 0.5 });
    await expect(b.get("k")).rejects.toThrow(/failed \d+ times/);
    expect(inner.calls).toBeGreaterThan(1);
    expect(inner.calls).toBeLessThan(5);
  });

  it("restarts a listing that breaks off and yields every key exactly once", async () => {
    const mem = new MemBackend();
    for (let i = 0; i < 50; i++) await mem.put(`idx/${i}`, Buffer.alloc(i));
    const faulty = new FaultInjectingBackend(mem, { seed: 7, resetRate: 0.5 });
    const seen: ObjectInfo[] = [];
    for await (const o of new RetryBackend(faulty, { ...FAST, attempts: 50 }).list("idx/")) seen.push(o);
    expect(faulty.injected.reset).toBeGreaterThan(0);
    expect(seen.map((o) => o.key).sort()).toEqual([...mem.objects.keys()].sort());
    expect(seen.every((o) => o.size === Number(o.key.slice(4)))).toBe(true);
  });
});

describe("FaultInjectingBackend", () => {
  const pattern = async (seed: number) => {
    const b = new FaultInjectingBackend(new MemBackend(), { seed, transientRate: 0.3 });
    const outcomes: boolean[] = [];
    for (let i = 0; i < 40; i++) outcomes.push(await b.put(`k/${i}`, Buffer.from("x")).then(() => true, () => false));
    return outcomes;
  };

  it("injects the same faults for the same seed, and different ones for another", async () => {
    const first = await pattern(42);
    expect(await pattern(42)).toEqual(first);
    expect(await pattern(43)).not.toEqual(first);
    expect(first.filter((ok) => !ok).length).toBeGreaterThan(3);
    expect(first.filter((ok) => ok).length).toBeGreaterThan(20);
  });

  it("lets a put land before it resets the connection, as a lost acknowledgement would", async () => {
    const mem = new MemBackend();
    const b = new FaultInjectingBackend(mem, { seed: 1, resetRate: 1 });
    await expect(b.put("k", Buffer.from("landed"))).rejects.toMatchObject({ kind: "transient" });
    expect(mem.objects.get("k")?.toString()).toBe("landed");
    b.faults.resetRate = 0;
    b.faults.transientRate = 1;
    await expect(b.delete("k")).rejects.toMatchObject({ kind: "transient" });
    expect(mem.objects.has("k")).toBe(true);
    expect(b.injected).toEqual({ transient: 1, reset: 1 });
  });

  it("draws numbers evenly enough to be a probability", () => {
    const random = seededRandom(3);
    const draws = Array.from({ length: 10_000 }, random);
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...draws)).toBeLessThan(1);
    expect(draws.filter((d) => d < 0.2).length).toBeGreaterThan(1_800);
    expect(draws.filter((d) => d < 0.2).length).toBeLessThan(2_200);
  });
});

describe("LimitBackend", () => {
  it("never runs more operations at once than its limit, and runs them all", async () => {
    let running = 0;
    let most = 0;
    class Slow extends MemBackend {
      override async put(key: string, body: Body): Promise<void> {
        most = Math.max(most, ++running);
        await new Promise((r) => setTimeout(r, 2));
        await super.put(key, body);
        running--;
      }
    }
    const inner = new Slow();
    const b = new LimitBackend(inner, 3);
    await Promise.all(Array.from({ length: 30 }, (_, i) => b.put(`k/${i}`, Buffer.from([i]))));
    expect(most).toBe(3);
    expect(inner.objects.size).toBe(30);
  });

  it("frees the slot of a failed operation", async () => {
    const b = new LimitBackend(new Failing(2, "permanent"), 1);
    const results = await Promise.allSettled([b.put("a", Buffer.from("a")), b.put("b", Buffer.from("b")), b.put("c", Buffer.from("c"))]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected", "fulfilled"]);
  });
});
