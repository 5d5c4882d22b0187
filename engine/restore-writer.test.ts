import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, existsSync, realpathSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Codec } from "./codec.js";
import { blobId } from "./crypto.js";
import { restoreRange, type RestoreRangeRequest } from "./restore-writer.js";

const keys = { idKey: randomBytes(32), dataKeys: [{ epoch: 1, key: randomBytes(32) }], epoch: 1, cipher: "aes-256-gcm" as const };
const codec = new Codec(keys);

/** A pack range holding the sealed blobs one after another, and where each lies. */
function range(plains: Buffer[]): { buffer: Buffer; blobs: Omit<RestoreRangeRequest["blobs"][number], "targets">[] } {
  const parts: Buffer[] = [];
  const blobs: Omit<RestoreRangeRequest["blobs"][number], "targets">[] = [];
  let offset = 0;
  for (const p of plains) {
    const { envelope, compression } = codec.seal({ op: "seal", data: p, compression: { algorithm: "zstd", level: 3 } });
    blobs.push({ offset, length: envelope.length, compression, expectId: blobId(keys.idKey, p) });
    parts.push(envelope);
    offset += envelope.length;
  }
  return { buffer: Buffer.concat(parts), blobs };
}

describe("restoreRange (a codec thread writing restored blobs)", () => {
  let dir: string;
  let root: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), "cairn-rw-"));
    root = path.join(dir, "root");
    mkdirSync(root);
    root = realpathSync(root);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("writes each blob at its offsets in every file that holds it, and sets metadata only on the files it completes", () => {
    const a = randomBytes(5000);
    const b = Buffer.alloc(3000, "b");
    const { buffer, blobs } = range([a, b]);
    const req: RestoreRangeRequest = {
      op: "restoreRange",
      buffer,
      root,
      // File 0 is a then b; file 1 is b alone; file 2 gets a at 0 but has another blob elsewhere (no meta).
      blobs: [
        { ...blobs[0], targets: [0, 0, 2, 0] },
        { ...blobs[1], targets: [0, a.length, 1, 0] },
      ],
      files: [
        { path: path.join(root, "ab"), writes: 2, meta: { mode: 0o640, mtime: 1_700_000_000.5 } },
        { path: path.join(root, "b"), writes: 1, meta: { mode: 0o604, mtime: 1_600_000_000.5 } },
        { path: path.join(root, "partial"), writes: 1 },
      ],
    };
    const res = restoreRange(codec, req);
    expect(res.failure).toBeUndefined();
    expect(res.bytesWritten).toBe(2 * a.length + 2 * b.length);
    expect(res.filesFinished).toBe(2);
    expect(readFileSync(path.join(root, "ab")).equals(Buffer.concat([a, b]))).toBe(true);
    expect(readFileSync(path.join(root, "b")).equals(b)).toBe(true);
    expect(readFileSync(path.join(root, "partial")).equals(a)).toBe(true);
    const st = statSync(path.join(root, "ab"));
    expect(st.mode & 0o7777).toBe(0o640);
    expect(Math.floor(st.mtimeMs / 1000)).toBe(1_700_000_000);
    expect(statSync(path.join(root, "b")).mode & 0o7777).toBe(0o604);
    expect(statSync(path.join(root, "partial")).mode & 0o7777).toBe(0o600);
  });

  it("refuses to write a file that a link on the way leads outside the target", () => {
    const outside = path.join(dir, "outside");
    mkdirSync(outside);
    symlinkSync(outside, path.join(root, "sub"));
    const { buffer, blobs } = range([Buffer.from("secret payload")]);
    const res = restoreRange(codec, {
      op: "restoreRange",
      buffer,
      root,
      blobs: [{ ...blobs[0], targets: [0, 0] }],
      files: [{ path: path.join(root, "sub", "f"), writes: 1, meta: { mode: 0o755, mtime: 1 } }],
    });
    expect(res.failure).toEqual({ kind: "outside", file: 0, real: path.join(outside, "f") });
    expect(res.bytesWritten).toBe(0);
    expect(readFileSync(path.join(outside, "f")).length).toBe(0);
  });

  it("does not follow a link in the file's own place", () => {
    const victim = path.join(dir, "victim");
    symlinkSync(victim, path.join(root, "f"));
    const { buffer, blobs } = range([Buffer.from("payload")]);
    const res = restoreRange(codec, { op: "restoreRange", buffer, root, blobs: [{ ...blobs[0], targets: [0, 0] }], files: [{ path: path.join(root, "f"), writes: 1 }] });
    expect(res.failure).toMatchObject({ kind: "file", file: 0, code: "ELOOP" });
    expect(existsSync(victim)).toBe(false);
  });

  it("stops at a damaged blob and names it, after writing the ones before it", () => {
    const first = randomBytes(2000);
    const { buffer, blobs } = range([first, randomBytes(2000)]);
    buffer[blobs[1].offset + 40] ^= 1;
    const res = restoreRange(codec, {
      op: "restoreRange",
      buffer,
      root,
      blobs: [
        { ...blobs[0], targets: [0, 0] },
        { ...blobs[1], targets: [1, 0] },
      ],
      files: [
        { path: path.join(root, "one"), writes: 1 },
        { path: path.join(root, "two"), writes: 1 },
      ],
    });
    expect(res.failure).toMatchObject({ kind: "blob", blob: 1 });
    expect(readFileSync(path.join(root, "one")).equals(first)).toBe(true);
    expect(existsSync(path.join(root, "two"))).toBe(false);
  });
});
