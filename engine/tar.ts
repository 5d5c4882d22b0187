/**
 * The POSIX tar (pax) format, written: what a snapshot download streams. Each
 * entry is a 512-byte ustar header (preceded by a pax extended header when a
 * name, link target or size does not fit ustar's fields), then the content
 * padded to 512 bytes; two zero blocks end the archive. GNU tar, bsdtar and
 * every tar library read it.
 */

const BLOCK = 512;

export interface TarEntry {
  /** Slash-separated, relative (no leading slash); a directory's ends without a slash (one is added). */
  path: string;
  type: "file" | "dir" | "symlink";
  /** Permission bits (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch. */
  mtime: number;
  /** Bytes of content that follow (files only). */
  size: number;
  linkname?: string;
}

const TYPEFLAG: Record<TarEntry["type"], string> = { file: "0", dir: "5", symlink: "2" };
/** The largest size ustar's 11 octal digits hold; bigger files carry their size in a pax header. */
const USTAR_MAX_SIZE = 0o77777777777;
const ascii = (s: string) => /^[\x20-\x7e]*$/.test(s);

/** The header block(s) of one entry. */
export function tarHeader(entry: TarEntry): Buffer {
  const name = entry.type === "dir" ? `${entry.path}/` : entry.path;
  const pax: [string, string][] = [];
  const split = splitName(name);
  if (!split) pax.push(["path", name]);
  if (entry.linkname !== undefined && (Buffer.byteLength(entry.linkname) > 100 || !ascii(entry.linkname))) pax.push(["linkpath", entry.linkname]);
  if (entry.size > USTAR_MAX_SIZE) pax.push(["size", String(entry.size)]);
  const main = ustar({
    name: split ? split[1] : truncatedAscii(name, 100),
    prefix: split ? split[0] : "",
    typeflag: TYPEFLAG[entry.type],
    entry,
    linkname: entry.linkname !== undefined && !pax.some(([k]) => k === "linkpath") ? entry.linkname : entry.linkname !== undefined ? truncatedAscii(entry.linkname, 100) : "",
  });
  if (!pax.length) return main;
  const records = Buffer.from(pax.map(([k, v]) => paxRecord(k, v)).join(""), "utf8");
  const extended = ustar({ name: truncatedAscii(`PaxHeaders/${name}`, 100), prefix: "", typeflag: "x", entry: { ...entry, size: records.length }, linkname: "" });
  return Buffer.concat([extended, records, padding(records.length), main]);
}

/** The zero bytes that bring content of `size` bytes to a whole block. */
export function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return Buffer.alloc(rest ? BLOCK - rest : 0);
}

/** What ends an archive: two zero blocks. */
export const TAR_END: Buffer = Buffer.alloc(2 * BLOCK);

/** [prefix, name] when the path fits ustar's fields (ASCII, name <= 100 bytes, prefix <= 155), else undefined. */
function splitName(p: string): [string, string] | undefined {
  if (!ascii(p)) return undefined;
  if (p.length <= 100) return ["", p];
  // The split falls on a slash; a directory's trailing slash stays with the name.
  for (let i = p.length - 1; i > 0; i--) {
    if (p[i] !== "/" || i === p.length - 1) continue;
    const prefix = p.slice(0, i);
    const name = p.slice(i + 1);
    if (prefix.length <= 155 && name.length <= 100 && name.length > 0) return [prefix, name];
    if (prefix.length <= 155) return undefined;
  }
  return undefined;
}

function truncatedAscii(s: string, max: number): string {
  return s.replace(/[^\x20-\x7e]/g, "_").slice(0, max);
}

/** "<length> key=value\n", where the length counts itself. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const bodyLen = Buffer.byteLength(body);
  let len = bodyLen + 1;
  while (String(len).length + bodyLen !== len) len = String(len).length + bodyLen;
  return `${len}${body}`;
}

function ustar(h: { name: string; prefix: string; typeflag: string; entry: TarEntry; linkname: string }): Buffer {
  const b = Buffer.alloc(BLOCK);
  const e = h.entry;
  b.write(h.name, 0, 100, "ascii");
  octal(b, 100, 8, e.mode & 0o7777);
  octal(b, 108, 8, clampId(e.uid));
  octal(b, 116, 8, clampId(e.gid));
  octal(b, 124, 12, e.size > USTAR_MAX_SIZE ? 0 : e.size);
  octal(b, 136, 12, Math.max(0, Math.min(e.mtime, 0o77777777777)));
  b.write(h.typeflag, 156, 1, "ascii");
  b.write(h.linkname, 157, 100, "ascii");
  b.write("ustar\u000000", 257, 8, "ascii");
  b.write(h.prefix, 345, 155, "ascii");
  // The checksum is computed with its own field as spaces.
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(`${sum.toString(8).padStart(6, "0")}\u0000 `, 148, 8, "ascii");
  return b;
}

function clampId(id: number): number {
  return id >= 0 && id <= 0o7777777 ? id : 0;
}

/** A zero-padded octal number ending in NUL, filling `width` bytes. */
function octal(b: Buffer, offset: number, width: number, n: number): void {
  b.write(`${Math.floor(n).toString(8).padStart(width - 1, "0")}\u0000`, offset, width, "ascii");
}
