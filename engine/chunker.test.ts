import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Chunker, DEFAULT_CHUNK_SIZES } from "./chunker.js";

function chunks(chunker: Chunker, data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  while (start < data.length) {
    const end = chunker.cut(data, start, data.length, true, { at: 0, h: 0 });
    out.push(data.subarray(start, end));
    start = end;
  }
  return out;
}

const seed = "11".repeat(32);
const chunker = new Chunker({ ...DEFAULT_CHUNK_SIZES, seed });

describe("Chunker", () => {
  const data = randomBytes(48 * 1024 * 1024);

  it("cuts every chunk between the minimum and maximum size and covers the input exactly", () => {
    const parts = chunks(chunker, data);
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    for (const p of parts.slice(0, -1)) {
      expect(p.length).toBeGreaterThanOrEqual(DEFAULT_CHUNK_SIZES.minSize);
      expect(p.length).toBeLessThanOrEqual(DEFAULT_CHUNK_SIZES.maxSize);
    }
    const avg = data.length / parts.length;
    expect(avg).toBeGreaterThan(700 * 1024);
    expect(avg).toBeLessThan(2 * 1024 * 1024);
  });

  it("changes only the chunks around an insertion near the start", () => {
    const before = chunks(chunker, data).map((c) => c.toString("base64"));
    const changed = Buffer.concat([data.subarray(0, 1000), randomBytes(333), data.subarray(1000)]);
    const after = chunks(chunker, changed).map((c) => c.toString("base64"));
    const old = new Set(before);
    const fresh = after.filter((c) => !old.has(c));
    expect(fresh.length).toBeLessThanOrEqual(2);
    expect(after.length - fresh.length).toBeGreaterThanOrEqual(before.length - 2);
  });

  it("cuts differently under another repository's seed", () => {
    const other = new Chunker({ ...DEFAULT_CHUNK_SIZES, seed: "22".repeat(32) });
    const a = chunks(chunker, data).map((c) => c.length);
    const b = chunks(other, data).map((c) => c.length);
    expect(a).not.toEqual(b);
  });

  it("asks for more data instead of cutting early when the input is not finished", () => {
    // A run of one byte value holds no cut point under this seed (see below).
    const run = Buffer.alloc(DEFAULT_CHUNK_SIZES.maxSize - 1, 7);
    expect(chunker.cut(run, 0, run.length, false, { at: 0, h: 0 })).toBe(-1);
    expect(chunker.cut(run, 0, run.length, true, { at: 0, h: 0 })).toBe(run.length);
    expect(chunker.cut(data, 0, 100, false, { at: 0, h: 0 })).toBe(-1);
    expect(chunker.cut(data, 0, 100, true, { at: 0, h: 0 })).toBe(100);
  });

  it("finds the same cut points when the bytes come in pieces, including chunks cut at the maximum", () => {
    // A run of one byte value keeps the rolling hash constant, and under this seed it matches no
    // mask: the run is cut at maxSize.
    const mixed = Buffer.concat([data.subarray(0, 20 * 1024 * 1024), Buffer.alloc(3 * DEFAULT_CHUNK_SIZES.maxSize + 12345, 7), data.subarray(20 * 1024 * 1024)]);
    const whole = chunks(chunker, mixed).map((c) => c.length);
    expect(whole.filter((n) => n === DEFAULT_CHUNK_SIZES.maxSize).length).toBeGreaterThanOrEqual(2);
    const pieces: number[] = [];
    let start = 0;
    let end = 0;
    let scan = { at: 0, h: 0 };
    let step = 1;
    for (;;) {
      const eof = end === mixed.length;
      if (start === end && eof) break;
      const cut = chunker.cut(mixed, start, end, eof, scan);
      if (cut === -1) {
        // Pieces of varied size, from a few bytes to a few MiB, as reads return them.
        step = (step * 7919 + 13) % (3 * 1024 * 1024);
        end = Math.min(mixed.length, end + 1 + step);
        continue;
      }
      expect(cut).toBeLessThanOrEqual(end);
      pieces.push(cut - start);
      start = cut;
      scan = { at: 0, h: 0 };
    }
    expect(pieces).toEqual(whole);
  });

  it("refuses inconsistent sizes", () => {
    expect(() => new Chunker({ minSize: 10, avgSize: 5, maxSize: 20, seed })).toThrow(/min < avg < max/);
  });
});
