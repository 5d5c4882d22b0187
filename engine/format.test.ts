/**
 * Keeps docs/format.md true: writes a repository with the engine, then decodes it
 * using only what the document says (node:crypto, node:zlib, zstd-napi) — no engine
 * code is used for reading.
 */
import { createDecipheriv, createHash, createHmac, randomBytes, scryptSync } from "node:crypto";
import { lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decompress as zstdDecompress } from "zstd-napi";
import { LocalBackend } from "../backends/local.js";
import { Archiver } from "./archiver.js";
import { RepositoryLock } from "./locks.js";
import { Repository } from "./repository.js";

const PASSWORD = "format document";
const CHUNKER = { minSize: 16 * 1024, avgSize: 64 * 1024, maxSize: 256 * 1024, seed: randomBytes(32).toString("hex") };

// ---- Decoding by the document ----

const sha256Hex = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** §2: version, cipher id, epoch u32 LE, nonce, ciphertext, tag; the 18 header bytes are associated data. */
function openEnvelope(env: Buffer, keyFor: (epoch: number) => Buffer): Buffer {
  expect(env[0]).toBe(1);
  const cipher = ({ 1: "aes-256-gcm", 2: "chacha20-poly1305" } as Record<number, string>)[env[1]];
  const d = createDecipheriv(cipher as "aes-256-gcm", keyFor(env.readUInt32LE(2)), env.subarray(6, 18), { authTagLength: 16 });
  d.setAAD(env.subarray(0, 18), { plaintextLength: env.length - 34 });
  d.setAuthTag(env.subarray(env.length - 16));
  return Buffer.concat([d.update(env.subarray(18, env.length - 16)), d.final()]);
}

/** §6 */
function decompress(id: number, data: Buffer): Buffer {
  switch (id) {
    case 0:
      return data;
    case 1:
      return zstdDecompress(data);
    case 2:
      return gunzipSync(data);
    case 3:
      return brotliDecompressSync(data);
  }
  throw new Error(`compression id ${id}`);
}

/** §5: one compression byte, then the payload. */
const unpacked = (plain: Buffer) => decompress(plain[0], plain.subarray(1));

interface Entry {
  type: number;
  compression: number;
  offset: number;
  length: number;
  rawLength: number;
  id: string;
}

/** §9 */
function parseIndex(buf: Buffer): { supersedes: string[]; packs: Map<string, Entry[]> } {
  expect(buf.subarray(0, 4).toString("ascii")).toBe("CIX1");
  let at = 4;
  const supersedes: string[] = [];
  const nSup = buf.readUInt32LE(at);
  at += 4;
  for (let i = 0; i < nSup; i++, at += 32) supersedes.push(buf.toString("hex", at, at + 32));
  const nPacks = buf.readUInt32LE(at);
  at += 4;
  const packs = new Map<string, Entry[]>();
  for (let p = 0; p < nPacks; p++) {
    const id = buf.toString("hex", at, at + 32);
    const n = buf.readUInt32LE(at + 32);
    at += 36;
    const entries: Entry[] = [];
    for (let i = 0; i < n; i++, at += 46) {
      entries.push({ type: buf[at], compression: buf[at + 1], offset: buf.readUInt32LE(at + 2), length: buf.readUInt32LE(at + 6), rawLength: buf.readUInt32LE(at + 10), id: buf.toString("hex", at + 14, at + 46) });
    }
    packs.set(id, entries);
  }
  expect(at).toBe(buf.length);
  return { supersedes, packs };
}

/** §8: blobs, header envelope, u32 LE header length; 42-byte entries, offsets implied. */
function parsePackHeader(pack: Buffer, keyFor: (epoch: number) => Buffer): { entries: Entry[]; headerEpoch: number } {
  const headerLen = pack.readUInt32LE(pack.length - 4);
  const headerEnv = pack.subarray(pack.length - 4 - headerLen, pack.length - 4);
  const header = openEnvelope(headerEnv, keyFor);
  expect(header.length % 42).toBe(0);
  const entries: Entry[] = [];
  let offset = 0;
  for (let at = 0; at < header.length; at += 42) {
    const length = header.readUInt32LE(at + 2);
    entries.push({ type: header[at], compression: header[at + 1], offset, length, rawLength: header.readUInt32LE(at + 6), id: header.toString("hex", at + 10, at + 42) });
    offset += length;
  }
  expect(offset).toBe(pack.length - 4 - headerLen);
  return { entries, headerEpoch: headerEnv.readUInt32LE(2) };
}

/** §10 */
function chunkSizes(data: Buffer, p: typeof CHUNKER): number[] {
  const seed = Buffer.from(p.seed, "hex");
  const gear = Array.from({ length: 256 }, (_, i) => createHash("sha256").update(seed).update(Uint8Array.of(i)).digest().readInt32LE(0));
  const bits = Math.round(Math.log2(p.avgSize));
  const top = (n: number) => (0xffffffff << (32 - n)) >>> 0;
  const strict = top(bits + 2);
  const loose = top(bits - 2);
  const sizes: number[] = [];
  for (let s = 0; s < data.length; ) {
    const n = data.length - s;
    let end = data.length;
    if (n > p.minSize) {
      const limit = s + Math.min(n, p.maxSize);
      const normal = Math.min(limit, s + p.avgSize);
      end = limit;
      let h = 0;
      for (let i = s + p.minSize; i < limit; i++) {
        h = ((h << 1) + gear[data[i]]) >>> 0;
        if (((h & (i < normal ? strict : loose)) >>> 0) === 0) {
          end = i + 1;
          break;
        }
      }
    }
    sizes.push(end - s);
    s = end;
  }
  return sizes;
}

/** Lists the names under one directory of the repository, checking that each names its content (§1). */
function contentAddressed(repo: string, dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        walk(p);
        continue;
      }
      const bytes = readFileSync(p);
      expect(sha256Hex(bytes)).toBe(e.name);
      out.set(path.relative(repo, p), bytes);
    }
  };
  walk(path.join(repo, dir));
  return out;
}

// ---- The repository under test ----

let root: string;
let repoDir: string;
let src: string;
let lockFile: { name: string; bytes: Buffer } | undefined;

beforeAll(async () => {
  root = path.join(tmpdir(), `cairn-format-${randomBytes(6).toString("hex")}`);
  repoDir = path.join(root, "repo");
  src = path.join(root, "src");
  mkdirSync(path.join(src, "sub"), { recursive: true });
  writeFileSync(path.join(src, "random.bin"), randomBytes(1024 * 1024 + 4321));
  writeFileSync(path.join(src, "text.txt"), Array.from({ length: 8000 }, (_, i) => `line ${i % 97} of the format test\n`).join(""));
  writeFileSync(path.join(src, "sub", "empty"), "");
  symlinkSync("../text.txt", path.join(src, "sub", "link"));

  const backend = new LocalBackend(repoDir);
  const repo = await Repository.init(backend, PASSWORD, { kdf: { name: "scrypt", N: 1024, r: 8, p: 1 }, chunker: CHUNKER, packSize: 256 * 1024, threads: 0 });
  await new Archiver(repo, { tags: ["first"] }).backup([src]);
  await repo.rotateDataKey();
  await repo.close();

  const rotated = await Repository.open(backend, PASSWORD, { threads: 0 });
  writeFileSync(path.join(src, "after-rotation.bin"), randomBytes(300 * 1024));
  await new Archiver(rotated, { tags: ["second"] }).backup([src]);
  const lock = await RepositoryLock.acquire(rotated, { exclusive: true, operation: "format-test" });
  const [name] = readdirSync(path.join(repoDir, "locks"));
  lockFile = { name, bytes: readFileSync(path.join(repoDir, "locks", name)) };
  await lock.release();
  await rotated.close();
});

afterAll(async () => {
  const { rmSync } = await import("node:fs");
  if (root) rmSync(root, { recursive: true, force: true });
});

describe("docs/format.md describes the repository on disk", () => {
  it("decodes keys, config, keyring, index, packs, blobs, trees, snapshots and locks by hand", () => {
    // §3: the key file, opened with scrypt.
    const keys = contentAddressed(repoDir, "keys");
    expect(keys.size).toBe(1);
    const keyFile = JSON.parse([...keys.values()][0].toString("utf8"));
    expect(keyFile).toMatchObject({ version: 1, kdf: { name: "scrypt", N: 1024, r: 8, p: 1 } });
    const salt = Buffer.from(keyFile.salt, "base64");
    expect(salt.length).toBe(32);
    const wrapKey = scryptSync(Buffer.from(PASSWORD, "utf8"), salt, 32, { N: keyFile.kdf.N, r: keyFile.kdf.r, p: keyFile.kdf.p });
    const keyEnvelope = Buffer.from(keyFile.data, "base64");
    expect([keyEnvelope[1], keyEnvelope.readUInt32LE(2)]).toEqual([1, 0]);
    const master = JSON.parse(openEnvelope(keyEnvelope, () => wrapKey).toString("utf8"));
    const encKey = Buffer.from(master.encKey, "base64");
    const idKey = Buffer.from(master.idKey, "base64");
    expect([encKey.length, idKey.length]).toEqual([32, 32]);
    expect(() => openEnvelope(keyEnvelope, () => randomBytes(32))).toThrow();

    // §5: config, epoch 0, compression byte 0.
    const configEnv = readFileSync(path.join(repoDir, "config"));
    expect(configEnv.readUInt32LE(2)).toBe(0);
    const configPlain = openEnvelope(configEnv, () => encKey);
    expect(configPlain[0]).toBe(0);
    const config = JSON.parse(unpacked(configPlain).toString("utf8"));
    expect(config).toMatchObject({ version: 2, chunker: CHUNKER, compression: "zstd:3", cipher: "aes-256-gcm", packSize: 256 * 1024 });
    expect(config.id).toMatch(/^[0-9a-f]{32}$/);

    // §4: one keyring file, sealed under epoch 0, holding epoch 1.
    const rings = contentAddressed(repoDir, "keyring");
    expect(rings.size).toBe(1);
    const ringEnv = [...rings.values()][0];
    expect(ringEnv.readUInt32LE(2)).toBe(0);
    const ring = JSON.parse(unpacked(openEnvelope(ringEnv, () => encKey)).toString("utf8"));
    expect(ring.keys.map((k: { epoch: number }) => k.epoch)).toEqual([1]);
    const dataKeys = new Map<number, Buffer>([[0, encKey], ...ring.keys.map((k: { epoch: number; key: string }) => [k.epoch, Buffer.from(k.key, "base64")] as [number, Buffer])]);
    const keyFor = (epoch: number) => dataKeys.get(epoch)!;

    // §9: every index file; nothing superseded yet.
    const index = new Map<string, Entry & { pack: string }>();
    const indexEpochs = new Set<number>();
    for (const env of contentAddressed(repoDir, "index").values()) {
      indexEpochs.add(env.readUInt32LE(2));
      const file = parseIndex(unpacked(openEnvelope(env, keyFor)));
      expect(file.supersedes).toEqual([]);
      for (const [pack, entries] of file.packs) for (const e of entries) index.set(e.id, { ...e, pack });
    }
    expect(indexEpochs).toEqual(new Set([0, 1]));

    // §8: every pack's header agrees with the index; one blob type per pack; epochs in envelopes.
    const packs = contentAddressed(repoDir, "data");
    const indexedPacks = new Set([...index.values()].map((e) => e.pack));
    expect(new Set([...packs.keys()].map((k) => k.split("/")[2]))).toEqual(indexedPacks);
    const packBytes = new Map<string, Buffer>();
    const packEpochs = new Set<number>();
    for (const [key, bytes] of packs) {
      const [, xx, id] = key.split("/");
      expect(xx).toBe(id.slice(0, 2));
      packBytes.set(id, bytes);
      const { entries, headerEpoch } = parsePackHeader(bytes, keyFor);
      packEpochs.add(headerEpoch);
      expect(new Set(entries.map((e) => e.type)).size).toBe(1);
      for (const e of entries) {
        expect(index.get(e.id)).toEqual({ ...e, pack: id });
        expect(bytes.readUInt32LE(e.offset + 2)).toBe(headerEpoch);
      }
    }
    expect(packEpochs).toEqual(new Set([0, 1]));

    // §7: decrypt, decompress, and check the HMAC id of a blob.
    const loadBlob = (id: string): Buffer => {
      const loc = index.get(id)!;
      const env = packBytes.get(loc.pack)!.subarray(loc.offset, loc.offset + loc.length);
      const plain = decompress(loc.compression, openEnvelope(env, keyFor));
      expect(plain.length).toBe(loc.rawLength);
      expect(createHmac("sha256", idKey).update(plain).digest("hex")).toBe(id);
      return plain;
    };

    // §12: snapshots, with the epoch each was written under.
    const snapshots = [...contentAddressed(repoDir, "snapshots").values()]
      .map((env) => ({ epoch: env.readUInt32LE(2), ...JSON.parse(unpacked(openEnvelope(env, keyFor)).toString("utf8")) }))
      .sort((a, b) => (a.time < b.time ? -1 : 1));
    expect(snapshots.map((s) => [s.epoch, s.tags])).toEqual([[0, ["first"]], [1, ["second"]]]);
    const last = snapshots[1];
    expect(last).toMatchObject({ paths: [src], program: expect.stringMatching(/^cairn /) });
    expect(last.parent).toBeDefined();

    // §11: walk from the root tree down to the backed-up directory, then rebuild every file.
    const tree = (id: string) => {
      expect(index.get(id)!.type).toBe(1);
      return JSON.parse(loadBlob(id).toString("utf8")).nodes as Record<string, any>[];
    };
    let nodes = tree(last.tree);
    for (const part of src.split("/").filter(Boolean)) {
      const dir = nodes.find((n) => n.name === part)!;
      expect(dir.type).toBe("dir");
      nodes = tree(dir.subtree);
    }
    expect(nodes.map((n) => n.name)).toEqual(["after-rotation.bin", "random.bin", "sub", "text.txt"]);
    for (const n of nodes.filter((n) => n.type === "file")) {
      const file = path.join(src, n.name);
      const st = lstatSync(file, { bigint: true });
      expect(n).toMatchObject({ mode: Number(st.mode & 0o7777n), size: Number(st.size), mtime: st.mtimeNs.toString(), inode: st.ino.toString() });
      const bytes = readFileSync(file);
      expect(Buffer.concat(n.content.map((id: string) => loadBlob(id))).equals(bytes)).toBe(true);
      // §10: the chunk boundaries follow from the seed and sizes alone.
      expect(n.content.map((id: string) => index.get(id)!.rawLength)).toEqual(chunkSizes(bytes, CHUNKER));
    }
    const text = nodes.find((n) => n.name === "text.txt")!;
    expect(index.get(text.content[0])!.compression).toBe(1);
    const sub = tree(nodes.find((n) => n.name === "sub")!.subtree);
    expect(sub.map((n) => [n.name, n.type, n.size, n.content, n.linktarget])).toEqual([
      ["empty", "file", 0, [], undefined],
      ["link", "symlink", undefined, undefined, "../text.txt"],
    ]);

    // §13: the lock file a holder wrote.
    expect(lockFile).toBeDefined();
    expect(sha256Hex(lockFile!.bytes)).toBe(lockFile!.name);
    const lock = JSON.parse(unpacked(openEnvelope(lockFile!.bytes, keyFor)).toString("utf8"));
    expect(lock).toMatchObject({ pid: process.pid, exclusive: true, operation: "format-test" });
    expect(Date.parse(lock.expires) - Date.parse(lock.time)).toBe(5 * 60 * 1000);
    expect(readdirSync(path.join(repoDir, "locks"))).toEqual([]);
  });
});
