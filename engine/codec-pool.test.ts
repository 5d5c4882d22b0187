import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { CodecPool } from "./codec-pool.js";
import { Codec } from "./codec.js";
import { blobId } from "./crypto.js";

const keys = { idKey: randomBytes(32), dataKeys: [{ epoch: 1, key: randomBytes(32) }], epoch: 1, cipher: "aes-256-gcm" as const };
const zstd = { algorithm: "zstd", level: 3 } as const;
const pools: CodecPool[] = [];
const pool = (threads: number) => {
  const p = new CodecPool(keys, threads);
  pools.push(p);
  return p;
};

afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

describe("CodecPool threads", () => {
  it("seals on one thread while it keeps up, and starts another once every running one has a backlog", async () => {
    const p = pool(2);
    const data = randomBytes(256 * 1024);
    const one = await p.seal({ data, compression: zstd });
    expect(p.started).toBe(1);
    expect(new Codec(keys).open({ op: "open", envelope: one.envelope, compression: one.compression, expectId: blobId(keys.idKey, data) }).data!.equals(data)).toBe(true);
    // One job at a time never waits: the one thread is enough.
    for (let i = 0; i < 5; i++) await p.seal({ data: randomBytes(64 * 1024), compression: zstd });
    expect(p.started).toBe(1);
    // Many at once pile up behind it: a second thread takes some, none is lost.
    const many = Array.from({ length: 12 }, () => randomBytes(256 * 1024));
    const sealed = await Promise.all(many.map((d) => p.seal({ data: d, compression: zstd })));
    expect(p.started).toBe(2);
    const codec = new Codec(keys);
    // (Buffer.equals: vitest's toEqual walks 256 KiB buffers byte by byte, for seconds.)
    sealed.forEach((s, i) => expect(codec.open({ op: "open", envelope: s.envelope, compression: s.compression, expectId: blobId(keys.idKey, many[i]) }).data!.equals(many[i])).toBe(true));
  });

  it("starts every thread it may use for reading at once (a restore needs both from the start)", async () => {
    const p = pool(2);
    const data = randomBytes(64 * 1024);
    const s = await p.seal({ data, compression: zstd });
    expect(p.started).toBe(1);
    const opened = await p.open({ envelope: s.envelope, compression: s.compression, expectId: blobId(keys.idKey, data) });
    expect(opened.data!.equals(data)).toBe(true);
    expect(p.started).toBe(2);
  });
});
