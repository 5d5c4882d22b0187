import { randomBytes } from "node:crypto";
import { fstatSync, mkdirSync, openSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { tempDir } from "../test/helpers.js";
import { Codec } from "./codec.js";
import { blobId } from "./crypto.js";
import { GREW, UNREADABLE } from "./read-seal.js";

const idKey = randomBytes(32);
const codec = new Codec({ idKey, dataKeys: [{ epoch: 0, key: randomBytes(32) }], epoch: 0, cipher: "aes-256-gcm" });

/** A codec thread reads small files from descriptors the walk opened: each is closed, and each outcome is told apart. */
describe("readSeal", () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir("cairn-readseal-");
  });
  afterEach(() => tmp.cleanup());

  it("reads, hashes and seals each file, reports grown and unreadable ones, and closes every descriptor", () => {
    const small = randomBytes(3000);
    const big = randomBytes(5000);
    writeFileSync(path.join(tmp.dir, "small"), small);
    writeFileSync(path.join(tmp.dir, "empty"), "");
    writeFileSync(path.join(tmp.dir, "big"), big);
    mkdirSync(path.join(tmp.dir, "dir"));
    const fds = ["small", "empty", "big", "dir"].map((n) => openSync(path.join(tmp.dir, n), "r"));
    const r = codec.run({ op: "readSeal", fds, limit: 4096, compression: { algorithm: "zstd", level: 3 } }) as import("./read-seal.js").ReadSealResult;
    expect(r.sizes).toEqual([3000, 0, GREW, UNREADABLE]);
    expect(r.errors[3]).toMatch(/EISDIR/);
    expect(r.ids.subarray(0, 32).equals(blobId(idKey, small))).toBe(true);
    expect(r.lengths.slice(1)).toEqual([0, 0, 0]);
    const opened = codec.open({ op: "open", envelope: r.envelope.subarray(0, r.lengths[0]), compression: r.compressions[0], expectId: blobId(idKey, small) });
    expect(opened.data!.equals(small)).toBe(true);
    for (const fd of fds) expect(() => fstatSync(fd)).toThrow(/EBADF/);
  });
});
