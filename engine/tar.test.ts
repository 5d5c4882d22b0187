import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { padding, TAR_END, tarHeader, type TarEntry } from "./tar.js";

/** An archive of the entries, each file's content after its header. */
function archive(entries: [TarEntry, Buffer?][]): Buffer {
  const parts: Buffer[] = [];
  for (const [entry, data] of entries) {
    parts.push(tarHeader(entry));
    if (data) parts.push(data, padding(data.length));
  }
  parts.push(TAR_END);
  return Buffer.concat(parts);
}

const base = { mode: 0o640, uid: 0, gid: 0, mtime: 1_700_000_000, size: 0 };

describe("tar", () => {
  it("writes archives GNU tar extracts exactly: long and non-ASCII names, links, modes and times", () => {
    const long = `${"deep-directory-name/".repeat(12)}${"f".repeat(120)}.txt`;
    const files: [string, Buffer][] = [
      ["top/short.txt", Buffer.from("short\n")],
      [`top/${long}`, Buffer.from("long name\n")],
      ["top/ünïcode — name.txt", Buffer.from("utf-8\n")],
      // 146 bytes: fits ustar's prefix (155) and name (100) fields, split at a slash.
      [`top/${"p".repeat(90)}/${"n".repeat(50)}`, Buffer.from("split name\n")],
      ["top/block.bin", Buffer.alloc(512, 1)],
      ["top/empty", Buffer.alloc(0)],
    ];
    const dirs = new Set<string>(["top"]);
    for (const [p] of files) for (let d = path.posix.dirname(p); d !== "."; d = path.posix.dirname(d)) dirs.add(d);
    const tar = archive([
      ...[...dirs].sort().map((d): [TarEntry] => [{ ...base, path: d, type: "dir", mode: 0o755 }]),
      ...files.map(([p, data]): [TarEntry, Buffer] => [{ ...base, path: p, type: "file", size: data.length }, data]),
      [{ ...base, path: "top/link", type: "symlink", linkname: `target-${"x".repeat(150)}` }],
    ]);
    const dir = mkdtempSync(path.join(tmpdir(), "cairn-tar-"));
    try {
      writeFileSync(path.join(dir, "a.tar"), tar);
      execFileSync("tar", ["-xf", "a.tar"], { cwd: dir });
      for (const [p, data] of files) {
        expect(readFileSync(path.join(dir, p)), p).toEqual(data);
        expect(statSync(path.join(dir, p)).mode & 0o777).toBe(0o640);
        expect(statSync(path.join(dir, p)).mtimeMs).toBe(1_700_000_000_000);
      }
      expect(readlinkSync(path.join(dir, "top/link"))).toBe(`target-${"x".repeat(150)}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("pads content to whole blocks and ends with two zero blocks", () => {
    expect(padding(0)).toHaveLength(0);
    expect(padding(1)).toHaveLength(511);
    expect(padding(512)).toHaveLength(0);
    expect(TAR_END.equals(Buffer.alloc(1024))).toBe(true);
    expect(tarHeader({ ...base, path: "a", type: "file" })).toHaveLength(512);
  });

  it("carries a size past ustar's 8 GiB in a pax header", () => {
    const header = tarHeader({ ...base, path: "huge.img", type: "file", size: 10 * 1024 ** 3 });
    expect(header.toString("utf8")).toContain(` size=${10 * 1024 ** 3}\n`);
  });
});
