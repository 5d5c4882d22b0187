import { CairnError } from "../../engine/errors.js";

/** One member of a tar stream; `content` must be read (or left) before asking for the next member. */
export interface TarMember {
  path: string;
  type: "file" | "dir" | "symlink";
  mode: number;
  uid: number;
  gid: number;
  /** Milliseconds since the epoch. */
  mtime: number;
  size: number;
  linkname: string;
  content: AsyncIterable<Buffer>;
}

/** Pulls exact byte counts out of a stream of buffers. */
export class ByteReader {
  private pending: Buffer = Buffer.alloc(0);
  private readonly it: AsyncIterator<Buffer>;

  constructor(source: AsyncIterable<Buffer>) {
    this.it = source[Symbol.asyncIterator]();
  }

  /** Exactly `n` bytes, or undefined when the stream ends first. */
  async read(n: number): Promise<Buffer | undefined> {
    const parts: Buffer[] = [];
    let have = 0;
    for await (const b of this.take(n)) {
      parts.push(b);
      have += b.length;
    }
    return have === n ? Buffer.concat(parts) : undefined;
  }

  /**
   * Reads the source to its end and drops what is left. A stream left with unread
   * bytes never ends: a child process's stdout then never emits 'end', its 'close'
   * never comes, and once the child has exited nothing keeps the event loop alive.
   */
  async drain(): Promise<void> {
    this.pending = Buffer.alloc(0);
    while (!(await this.it.next()).done);
  }

  /** Yields the next `n` bytes as they arrive (fewer when the stream ends). */
  async *take(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.pending.length === 0) {
        const r = await this.it.next();
        if (r.done) return;
        this.pending = r.value;
        continue;
      }
      const k = Math.min(left, this.pending.length);
      const out = this.pending.subarray(0, k);
      this.pending = this.pending.subarray(k);
      left -= k;
      yield out;
    }
  }
}

function field(h: Buffer, start: number, len: number): string {
  const b = h.subarray(start, start + len);
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? len : end).toString("utf8");
}

function octal(h: Buffer, start: number, len: number): number {
  // GNU base-256 for sizes over 8 GiB: the high bit of the first byte is set.
  if (h[start] & 0x80) {
    let v = 0;
    for (let i = start + 1; i < start + len; i++) v = v * 256 + h[i];
    return v;
  }
  const s = field(h, start, len).trim();
  return s ? parseInt(s, 8) : 0;
}

function paxRecords(buf: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let at = 0;
  while (at < buf.length) {
    const space = buf.indexOf(0x20, at);
    if (space < 0) break;
    const len = Number(buf.toString("utf8", at, space));
    if (!len) break;
    const rec = buf.toString("utf8", space + 1, at + len - 1);
    const eq = rec.indexOf("=");
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    at += len;
  }
  return out;
}

/** Reads a ustar / pax / GNU tar stream (what pg_basebackup -Ft writes) member by member. */
export async function* readTar(source: AsyncIterable<Buffer>): AsyncGenerator<TarMember> {
  const r = new ByteReader(source);
  let longName: string | undefined;
  let pax = new Map<string, string>();
  for (;;) {
    const h = await r.read(512);
    if (!h) throw new CairnError("the tar stream ended in the middle of a header: the backup was cut short");
    if (h.every((b) => b === 0)) {
      // The end-of-archive marker: the second zero block and the padding to tar's
      // record size follow, and the source must be read to its end (see drain).
      await r.drain();
      return;
    }
    const size = octal(h, 124, 12);
    const flag = String.fromCharCode(h[156] || 0x30);
    const padded = Math.ceil(size / 512) * 512;
    if (flag === "x" || flag === "L") {
      const body = await r.read(padded);
      if (!body) throw new CairnError("the tar stream ended in the middle of an extended header");
      if (flag === "x") pax = paxRecords(body.subarray(0, size));
      else longName = field(body, 0, size);
      continue;
    }
    if (flag === "g") {
      await r.read(padded);
      continue;
    }
    const prefix = field(h, 345, 155);
    const name = pax.get("path") ?? longName ?? (prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100));
    const realSize = pax.has("size") ? Number(pax.get("size")) : size;
    const type = flag === "5" ? "dir" : flag === "2" ? "symlink" : flag === "0" ? "file" : undefined;
    if (!type) throw new CairnError(`the tar stream holds ${name} of type "${flag}", which a PostgreSQL base backup never has`);
    let consumed = 0;
    const content = (async function* () {
      for await (const b of r.take(realSize - consumed)) {
        consumed += b.length;
        yield b;
      }
    })();
    yield {
      path: name.replace(/^\.\//, "").replace(/\/$/, ""),
      type,
      mode: octal(h, 100, 8),
      uid: octal(h, 108, 8),
      gid: octal(h, 116, 8),
      mtime: octal(h, 136, 12) * 1000,
      size: realSize,
      linkname: pax.get("linkpath") ?? field(h, 157, 100),
      content,
    };
    // Whatever the consumer left unread, then the padding to the next 512-byte block.
    for await (const b of r.take(realSize - consumed)) consumed += b.length;
    if (consumed < realSize) throw new CairnError(`the tar stream ended inside ${name}: the backup was cut short`);
    const pad = Math.ceil(realSize / 512) * 512 - realSize;
    if (pad && !(await r.read(pad))) throw new CairnError("the tar stream ended in the middle of padding");
    longName = undefined;
    pax = new Map();
  }
}
