import { CairnError } from "../../engine/errors.js";
import { ByteReader } from "../postgres/tar.js";

/** One file of an xbstream; `content` must be read to its end before asking for the next file. */
export interface XbstreamMember {
  path: string;
  content: AsyncIterable<Buffer>;
}

const MAGIC = "XBSTCK01";
const ZEROS = Buffer.alloc(1 << 16);

interface Chunk {
  path: string;
  type: "payload" | "sparse" | "eof";
  length: bigint;
  offset: bigint;
  /** Sparse chunks: holes to leave before each run of payload bytes. */
  sparse: { skip: number; len: number }[];
}

async function readChunk(r: ByteReader): Promise<Chunk | undefined> {
  const fixed = await r.read(14);
  if (!fixed) return undefined;
  if (fixed.toString("latin1", 0, 8) !== MAGIC) throw new CairnError("mariadb-backup's stream is not an xbstream (bad chunk magic); the backup was not recorded");
  const kind = String.fromCharCode(fixed[9]);
  const path = (await r.read(fixed.readUInt32LE(10)))?.toString("utf8");
  if (path === undefined) throw new CairnError("mariadb-backup's stream ended inside a chunk header: the backup was cut short");
  if (kind === "E") return { path, type: "eof", length: 0n, offset: 0n, sparse: [] };
  if (kind !== "P" && kind !== "S") throw new CairnError(`mariadb-backup's stream holds a chunk of type "${kind}" that Cairn does not know; the backup was not recorded`);
  const count = kind === "S" ? (await r.read(4))?.readUInt32LE(0) : 0;
  const rest = await r.read(20);
  if (count === undefined || !rest) throw new CairnError("mariadb-backup's stream ended inside a chunk header: the backup was cut short");
  const sparse: Chunk["sparse"] = [];
  if (count) {
    const map = await r.read(8 * count);
    if (!map) throw new CairnError("mariadb-backup's stream ended inside a sparse map: the backup was cut short");
    for (let i = 0; i < count; i++) sparse.push({ skip: map.readUInt32LE(8 * i), len: map.readUInt32LE(8 * i + 4) });
  }
  return { path, type: kind === "S" ? "sparse" : "payload", length: rest.readBigUInt64LE(0), offset: rest.readBigUInt64LE(8), sparse };
}

function* zeros(n: number): Generator<Buffer> {
  for (let left = n; left > 0; left -= ZEROS.length) yield ZEROS.subarray(0, Math.min(left, ZEROS.length));
}

/**
 * Reads mariadb-backup's `--stream=xbstream` file by file. Each file's chunks must
 * come together, ended by its EOF chunk (one copy thread, as Cairn runs it); holes
 * of sparse chunks come out as zeros, so each file's bytes are what `mbstream -x`
 * would write.
 */
export async function* readXbstream(source: AsyncIterable<Buffer>): AsyncGenerator<XbstreamMember> {
  const r = new ByteReader(source);
  let next = await readChunk(r);
  while (next) {
    const first = next;
    if (first.path.startsWith("/") || first.path.split("/").includes("..")) throw new CairnError(`mariadb-backup's stream names the file ${first.path} outside the data directory; the backup was not recorded`);
    let done = false;
    const content = (async function* (): AsyncGenerator<Buffer> {
      let chunk: Chunk | undefined = first;
      let position = 0n;
      while (chunk && chunk.type !== "eof") {
        if (chunk.path !== first.path) throw new CairnError(`mariadb-backup's stream interleaves ${first.path} and ${chunk.path}; Cairn reads one file at a time (run mariadb-backup with one copy thread)`);
        if (chunk.offset < position) throw new CairnError(`mariadb-backup's stream goes back in ${first.path}; the backup was not recorded`);
        yield* zeros(Number(chunk.offset - position));
        position = chunk.offset;
        if (chunk.type === "sparse") {
          for (const run of chunk.sparse) {
            yield* zeros(run.skip);
            yield* take(r, run.len, first.path);
            position += BigInt(run.skip + run.len);
          }
        } else {
          yield* take(r, Number(chunk.length), first.path);
          position += chunk.length;
        }
        chunk = await readChunk(r);
      }
      if (!chunk) throw new CairnError(`mariadb-backup's stream ended inside ${first.path}: the backup was cut short`);
      done = true;
    })();
    yield { path: first.path, content };
    if (!done) for await (const b of content) void b;
    next = await readChunk(r);
  }
}

async function* take(r: ByteReader, n: number, path: string): AsyncGenerator<Buffer> {
  let got = 0;
  for await (const b of r.take(n)) {
    got += b.length;
    yield b;
  }
  if (got < n) throw new CairnError(`mariadb-backup's stream ended inside ${path}: the backup was cut short`);
}
