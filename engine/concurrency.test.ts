import { describe, expect, it } from "vitest";
import { mapLimit } from "./concurrency.js";
import { CairnError } from "./errors.js";

/** A job that stays running until the test lets it end. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** Lets every pending promise callback run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("mapLimit", () => {
  it("runs every item once and never more than `limit` at once", async () => {
    const items = Array.from({ length: 20 }, (_, i) => i);
    const gates = items.map(() => gate());
    const seen: number[] = [];
    let running = 0;
    let most = 0;
    const done = mapLimit(items, 3, async (item, i) => {
      expect(i).toBe(item);
      running++;
      most = Math.max(most, running);
      seen.push(item);
      await gates[item].promise;
      running--;
    });
    await settle();
    expect(seen).toEqual([0, 1, 2]);
    for (const g of gates) {
      g.open();
      await settle();
    }
    await done;
    expect(most).toBe(3);
    expect(seen).toEqual(items);
  });

  it("rejects with the first failure and starts no item after it", async () => {
    const started: number[] = [];
    const second = gate();
    const done = mapLimit([0, 1, 2, 3, 4], 2, async (item) => {
      started.push(item);
      if (item === 0) throw new Error("item 0 failed");
      await second.promise;
    });
    await expect(done).rejects.toThrow("item 0 failed");
    second.open();
    await settle();
    expect(started).toEqual([0, 1]);
  });

  it("stops starting items once its signal aborts, with the caller's message", async () => {
    const ac = new AbortController();
    const started: number[] = [];
    const first = gate();
    const done = mapLimit(
      [0, 1, 2, 3],
      1,
      async (item) => {
        started.push(item);
        await first.promise;
      },
      { signal: ac.signal, cancelled: () => `cancelled after ${started.length} items` },
    );
    await settle();
    ac.abort();
    first.open();
    const err = await done.then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CairnError);
    expect((err as Error).message).toBe("cancelled after 1 items");
    expect(started).toEqual([0]);
  });

  it("starts nothing under a signal already aborted, and rejects with its reason", async () => {
    const ac = new AbortController();
    ac.abort(new Error("gave up"));
    let calls = 0;
    await expect(mapLimit([1, 2], 2, async () => void calls++, { signal: ac.signal })).rejects.toThrow("gave up");
    expect(calls).toBe(0);
  });

  it("refuses a limit that would run nothing", async () => {
    await expect(mapLimit([1], 0, async () => undefined)).rejects.toBeInstanceOf(RangeError);
  });
});
