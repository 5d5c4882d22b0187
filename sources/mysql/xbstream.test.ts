import { describe, expect, it } from "vitest";
import { readXbstream } from "./xbstream.js";

/** One xbstream chunk as mariadb-backup writes it (the checksum is not read). */
function chunk(path: string, kind: "P" | "S" | "E", offset = 0, payload = Buffer.alloc(0), sparse: [number, number][] = []): Buffer {
  const head = Buffer.alloc(14);
  head.write("XBSTCK01", 0, "latin1");
  head[9] = kind.charCodeAt(0);
  head.writeUInt32LE(Buffer.byteLength(path), 10);
  if (kind === "E") return Buffer.concat([head, Buffer.from(path)]);
  const count = Buffer.alloc(4);
  count.writeUInt32LE(sparse.length);
  const sizes = Buffer.alloc(20);
  sizes.writeBigUInt64LE(BigInt(payload.length), 0);
  sizes.writeBigUInt64LE(BigInt(offset), 8);
  const map = Buffer.concat(sparse.map(([skip, len]) => Buffer.from(new Uint32Array([skip, len]).buffer)));
  return Buffer.concat([head, Buffer.from(path), ...(kind === "S" ? [count] : []), sizes, map, payload]);
}

async function files(stream: Buffer, pieceSize = 7): Promise<Record<string, Buffer>> {
  const pieces = async function* () {
    for (let i = 0; i < stream.length; i += pieceSize) yield stream.subarray(i, i + pieceSize);
  };
  const out: Record<string, Buffer> = {};
  for await (const m of readXbstream(pieces())) {
    const parts: Buffer[] = [];
    for await (const b of m.content) parts.push(Buffer.from(b));
    out[m.path] = Buffer.concat(parts);
  }
  return out;
}

describe("readXbstream", () => {
  it("gives each file's bytes, in chunks and with sparse holes as zeros, as mbstream would write them", async () => {
    const stream = Buffer.concat([
      chunk("ibdata1", "P", 0, Buffer.from("abc")),
      chunk("ibdata1", "P", 3, Buffer.from("def")),
      chunk("ibdata1", "E"),
      chunk("empty", "E"),
      chunk("app/t.ibd", "S", 0, Buffer.from("xyz"), [[2, 1], [3, 2]]),
      chunk("app/t.ibd", "E"),
    ]);
    expect(await files(stream)).toEqual({
      ibdata1: Buffer.from("abcdef"),
      empty: Buffer.alloc(0),
      "app/t.ibd": Buffer.concat([Buffer.alloc(2), Buffer.from("x"), Buffer.alloc(3), Buffer.from("yz")]),
    });
  });

  it("refuses interleaved files, paths outside the directory and a cut stream", async () => {
    await expect(files(Buffer.concat([chunk("a", "P", 0, Buffer.from("1")), chunk("b", "P", 0, Buffer.from("2"))]))).rejects.toThrow(/interleaves a and b/);
    await expect(files(chunk("../etc/passwd", "P", 0, Buffer.from("x")))).rejects.toThrow(/outside the data directory/);
    await expect(files(chunk("a", "P", 0, Buffer.from("123456")).subarray(0, 40))).rejects.toThrow(/cut short/);
    await expect(files(Buffer.from("not a stream at all"))).rejects.toThrow(/not an xbstream/);
  });
});
