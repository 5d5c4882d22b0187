/**
 * Memory and lookup benchmark for the in-memory blob index (engine/blob-index.ts).
 *
 *   node --expose-gc dist/bench/index-memory.js [blobs] [--json]
 *
 * Fills a BlobIndex the way Repository loads index files (pack by pack) with random
 * 32-byte ids spread over ~60k packs, then reports bytes per blob twice: as the index
 * accounts for itself (byteSize) and as the process sees it (heap + off-heap growth).
 * A backup of a few TiB holds millions of blobs, and the whole index stays in memory
 * for every command, so this number decides how much RAM Cairn needs on big repositories.
 */
import { randomBytes } from "node:crypto";
import { BlobIndex, BlobType } from "../engine/blob-index.js";

const ID = 32;
/** Blobs per pack in a 16 MiB pack of ~1 MiB chunks: 1M blobs land in ~60k packs. */
const BLOBS_PER_PACK = 16.5;
const MiB = 1024 * 1024;

interface Report {
  blobs: number;
  packs: number;
  byteSizePerBlob: number;
  processPerBlob: number;
  heapDeltaBytes: number;
  externalDeltaBytes: number;
  arrayBuffersDeltaBytes: number;
  gcExposed: boolean;
  buildSeconds: number;
  hitLookupsPerSecond: number;
  missLookupsPerSecond: number;
  getPerSecond: number;
}

const gc = (globalThis as { gc?: () => void }).gc;

/** Heap plus memory outside it; `external` already includes `arrayBuffers` (Node docs). */
function memory(): NodeJS.MemoryUsage {
  gc?.();
  gc?.();
  return process.memoryUsage();
}

function lookupsPerSecond(count: number, lookup: (i: number) => unknown): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) lookup(i);
  return count / (Number(process.hrtime.bigint() - t0) / 1e9);
}

function measure(blobs: number): Report {
  // Ids are generated before the baseline: they stand for the data being indexed, not the index.
  const ids = randomBytes(blobs * ID);
  const misses = randomBytes(blobs * ID);
  const id = (buf: Buffer, i: number) => buf.subarray(i * ID, (i + 1) * ID);
  let seed = 0x9e3779b9;
  const rand = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 4294967296;
  };

  const before = memory();
  const t0 = process.hrtime.bigint();
  const index = new BlobIndex();
  let packs = 0;
  for (let i = 0; i < blobs; ) {
    // Pack ids are created here because the index keeps them (pack table and its map).
    const pack = index.packNumber(randomBytes(ID).toString("hex"));
    packs++;
    const inPack = Math.max(1, Math.round(BLOBS_PER_PACK * (0.5 + rand())));
    let offset = 0;
    for (let k = 0; k < inPack && i < blobs; k++, i++) {
      const rawLength = Math.floor(MiB / 2 + rand() * 1.5 * MiB);
      const length = Math.floor(rawLength * (0.3 + rand() * 0.7)) + 28;
      index.add({ id: id(ids, i), type: k === 0 ? BlobType.tree : BlobType.data, pack, offset, length, rawLength, compression: 1 });
      offset += length;
    }
  }
  const buildSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const after = memory();
  if (index.size !== blobs) throw new Error(`index holds ${index.size} blobs, expected ${blobs}: duplicate random ids?`);

  const order = new Uint32Array(blobs);
  for (let i = 0; i < blobs; i++) order[i] = i;
  for (let i = blobs - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  let found = 0;
  const hitLookupsPerSecond = lookupsPerSecond(blobs, (i) => index.has(id(ids, order[i])) && found++);
  if (found !== blobs) throw new Error(`only ${found} of ${blobs} stored ids were found again`);
  let falseHits = 0;
  const missLookupsPerSecond = lookupsPerSecond(blobs, (i) => index.has(id(misses, i)) && falseHits++);
  if (falseHits !== 0) throw new Error(`${falseHits} ids that were never added were reported as present`);
  const getPerSecond = lookupsPerSecond(blobs, (i) => index.get(id(ids, order[i])));

  const heap = after.heapUsed - before.heapUsed;
  const external = after.external - before.external;
  return {
    blobs,
    packs,
    byteSizePerBlob: index.byteSize / blobs,
    processPerBlob: (heap + external) / blobs,
    heapDeltaBytes: heap,
    externalDeltaBytes: external,
    arrayBuffersDeltaBytes: after.arrayBuffers - before.arrayBuffers,
    gcExposed: gc !== undefined,
    buildSeconds,
    hitLookupsPerSecond,
    missLookupsPerSecond,
    getPerSecond,
  };
}

const args = process.argv.slice(2);
const blobs = Number(args.find((a) => !a.startsWith("--")) ?? 1_000_000);
if (!Number.isInteger(blobs) || blobs < 1) {
  process.stderr.write("usage: node --expose-gc dist/bench/index-memory.js [blobs] [--json]\n");
  process.exit(2);
}
const r = measure(blobs);
if (args.includes("--json")) {
  process.stdout.write(JSON.stringify(r) + "\n");
} else {
  const f = (n: number) => Math.round(n).toLocaleString("en-US");
  process.stdout.write(
    [
      `BlobIndex with ${f(r.blobs)} blobs in ${f(r.packs)} packs (built in ${r.buildSeconds.toFixed(2)} s)`,
      `bytes per blob, BlobIndex.byteSize:        ${r.byteSizePerBlob.toFixed(1)}`,
      `bytes per blob, process memory growth:     ${r.processPerBlob.toFixed(1)}` +
        `  (heapUsed ${f(r.heapDeltaBytes)} + external ${f(r.externalDeltaBytes)}, of which arrayBuffers ${f(r.arrayBuffersDeltaBytes)})`,
      r.gcExposed ? "" : "note: run node with --expose-gc for a stable process figure (garbage was not collected first)",
      `has() of stored ids, random order:         ${f(r.hitLookupsPerSecond)} lookups/s`,
      `has() of absent ids:                       ${f(r.missLookupsPerSecond)} lookups/s`,
      `get() of stored ids, random order:         ${f(r.getPerSecond)} lookups/s`,
    ]
      .filter(Boolean)
      .join("\n") + "\n",
  );
}
