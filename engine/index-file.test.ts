import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { decodeIndex, encodeIndex, indexSupersedes, type IndexFile } from "./index-file.js";

const entry = (offset: number) => ({ type: 1 as const, compression: 2, offset, length: 40, rawLength: 90, id: randomBytes(32) });
const file: IndexFile = {
  supersedes: [randomBytes(32).toString("hex"), randomBytes(32).toString("hex")],
  packs: [
    { id: randomBytes(32).toString("hex"), blobs: [entry(0), entry(40)] },
    { id: randomBytes(32).toString("hex"), blobs: [entry(0)] },
  ],
};

/** What a reader made of `buf`: its supersedes, or the error it threw. */
const outcome = (read: (buf: Buffer) => string[], buf: Buffer): string[] | string => {
  try {
    return read(buf);
  } catch (err) {
    return String(err);
  }
};

describe("indexSupersedes", () => {
  it("reads what decodeIndex reads and refuses every file decodeIndex refuses", () => {
    const encoded = encodeIndex(file);
    expect(indexSupersedes(encoded)).toEqual(file.supersedes);
    const damaged: Buffer[] = [Buffer.concat([encoded, Buffer.from([0])]), Buffer.from("XXXX" + encoded.toString("latin1").slice(4), "latin1")];
    for (let n = 0; n < encoded.length; n++) damaged.push(encoded.subarray(0, n));
    // A pack claiming more entries than the file holds.
    const lying = Buffer.from(encoded);
    lying.writeUInt32LE(3, 4 + 4 + 2 * 32 + 4 + 32);
    damaged.push(lying);
    for (const buf of damaged) {
      const expected = outcome((b) => decodeIndex(b).supersedes, buf);
      expect(typeof expected).toBe("string");
      expect(outcome(indexSupersedes, buf)).toEqual(expected);
    }
  });
});
