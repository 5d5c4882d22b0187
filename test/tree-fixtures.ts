import { createHash, randomBytes } from "node:crypto";
import { chmodSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, symlinkSync, utimesSync, writeFileSync, writeSync, closeSync } from "node:fs";
import * as path from "node:path";

/**
 * Builds a tree with what trips backup tools up: empty files, a large file, a
 * sparse-ish file, unicode names, symlinks (one dangling), deep nesting, odd
 * permissions and old mtimes.
 */
export function makeOddTree(root: string): void {
  mkdirSync(root, { recursive: true });
  writeFileSync(path.join(root, "empty"), "");
  mkdirSync(path.join(root, "empty-dir"));
  writeFileSync(path.join(root, "small.txt"), "hello, world\n");
  const big = Buffer.concat([randomBytes(6 * 1024 * 1024), Buffer.from("log line 42\n".repeat(400_000))]);
  writeFileSync(path.join(root, "large.bin"), big);
  // Sparse-ish: a hole, a little data, another hole, data at the end.
  const fd = openSync(path.join(root, "sparse.img"), "w");
  writeSync(fd, Buffer.from("start"), 0, 5, 3 * 1024 * 1024);
  writeSync(fd, randomBytes(1000), 0, 1000, 9 * 1024 * 1024);
  closeSync(fd);
  writeFileSync(path.join(root, "naïve café ünïcødé 日本語 🙂.txt"), "unicode\n");
  writeFileSync(path.join(root, "spaces and 'quotes' \"too\""), "odd name\n");
  writeFileSync(path.join(root, "newline\nin name"), "nl\n");
  symlinkSync("small.txt", path.join(root, "link-to-small"));
  symlinkSync("../does/not/exist", path.join(root, "dangling-link"));
  symlinkSync("empty-dir", path.join(root, "link-to-dir"));
  let deep = path.join(root, "deep");
  for (let i = 0; i < 40; i++) deep = path.join(deep, `level-${i}`);
  mkdirSync(deep, { recursive: true });
  writeFileSync(path.join(deep, "bottom.txt"), "at the bottom\n");
  writeFileSync(path.join(root, "exec.sh"), "#!/bin/sh\necho hi\n");
  chmodSync(path.join(root, "exec.sh"), 0o755);
  writeFileSync(path.join(root, "setuid"), "s");
  chmodSync(path.join(root, "setuid"), 0o4750);
  writeFileSync(path.join(root, "private"), "p");
  chmodSync(path.join(root, "private"), 0o600);
  writeFileSync(path.join(root, "readonly"), "r");
  chmodSync(path.join(root, "readonly"), 0o444);
  mkdirSync(path.join(root, "sticky"));
  chmodSync(path.join(root, "sticky"), 0o1777);
  utimesSync(path.join(root, "small.txt"), new Date("2001-02-03T04:05:06.789Z"), new Date("2001-02-03T04:05:06.789Z"));
}

export interface EntryFacts {
  type: string;
  mode: number;
  size?: number;
  sha256?: string;
  link?: string;
  mtimeUs: number;
}

/** Everything a restore must bring back, per relative path. Directory mtimes are left out when `skipDirTimes`. */
export function describeTree(root: string, skipDirTimes = false): Record<string, EntryFacts> {
  const out: Record<string, EntryFacts> = {};
  const walk = (dir: string, rel: string) => {
    for (const name of readdirSync(dir).sort()) {
      const full = path.join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(full, { bigint: true });
      const mtimeUs = Number(st.mtimeNs / 1000n);
      if (st.isSymbolicLink()) out[r] = { type: "symlink", mode: 0, link: readlinkSync(full), mtimeUs };
      else if (st.isDirectory()) {
        out[r] = { type: "dir", mode: Number(st.mode & 0o7777n), mtimeUs: skipDirTimes ? 0 : mtimeUs };
        walk(full, r);
      } else {
        out[r] = { type: "file", mode: Number(st.mode & 0o7777n), size: Number(st.size), sha256: createHash("sha256").update(readFileSync(full)).digest("hex"), mtimeUs };
      }
    }
  };
  walk(root, "");
  return out;
}

/** A tree's facts as a worker restores it under the default execution policy: setuid and setgid bits dropped. */
export function withoutSetid(tree: Record<string, EntryFacts>): Record<string, EntryFacts> {
  return Object.fromEntries(Object.entries(tree).map(([p, f]) => [p, { ...f, mode: f.mode & ~0o6000 }]));
}

/** SHA-256 of every file under `root`, by relative path: equal digests mean identical contents. */
export function digestTree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string, rel: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(dir, e.name), `${rel}${e.name}/`);
      else out[rel + e.name] = createHash("sha256").update(readFileSync(path.join(dir, e.name))).digest("hex");
    }
  };
  walk(root, "");
  return out;
}
