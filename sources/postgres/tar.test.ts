import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readTar } from "./tar.js";

/** The members of a tar stream with their bytes. */
async function members(source: AsyncIterable<Buffer>): Promise<{ path: string; type: string; bytes: Buffer }[]> {
  const out: { path: string; type: string; bytes: Buffer }[] = [];
  for await (const m of readTar(source)) {
    const parts: Buffer[] = [];
    for await (const b of m.content) parts.push(b);
    out.push({ path: m.path, type: m.type, bytes: Buffer.concat(parts) });
  }
  return out;
}

describe("readTar", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "cairn-tar-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const data = Buffer.alloc(1000, "x");
  writeFileSync(path.join(dir, "a.txt"), data);
  const tarFile = path.join(dir, "a.tar");
  // GNU tar, as a user has it: one member, then the end-of-archive blocks and the padding to its 10 KiB record.
  const made = spawnSync("tar", ["-C", dir, "--format=ustar", "-cf", tarFile, "a.txt"]);
  if (made.status !== 0) throw new Error(`tar failed: ${made.stderr}`);

  it("reads the members tar wrote", async () => {
    expect(statSync(tarFile).size).toBe(10240);
    const got = await members((async function* () {
      yield readFileSync(tarFile);
    })());
    expect(got.map((m) => [m.path, m.type])).toEqual([["a.txt", "file"]]);
    expect(got[0].bytes.equals(data)).toBe(true);
  });

  // pg_basebackup's stream ends the same way. When the bytes after the first zero block
  // came in a later read than the rest, they stayed unread: the pipe never ended, the
  // child's 'close' never came, and `cairn pg backup` ended with exit 0 and no snapshot
  // as soon as pg_basebackup had exited and nothing else kept the process alive.
  it("reads a child's stream to its end, so the child's close comes", async () => {
    // Header (512) + data (1024) + the first zero block; the rest comes a moment later.
    const first = 512 + 1024 + 512;
    const child = spawn("sh", ["-c", `head -c ${first} "$1"; sleep 0.3; tail -c +${first + 1} "$1"`, "sh", tarFile], { stdio: ["ignore", "pipe", "inherit"] });
    const closed = once(child, "close");
    const got = await members(child.stdout);
    expect(got.map((m) => m.path)).toEqual(["a.txt"]);
    const [code] = await closed;
    expect(code).toBe(0);
    expect(child.stdout.readableEnded).toBe(true);
  }, 20_000);
});
