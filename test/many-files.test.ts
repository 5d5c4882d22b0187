import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, PASSWORD, cairnOk, tempDir, type CliResult } from "./helpers.js";
import { describeTree } from "./tree-fixtures.js";

const FILES = 20_000;
const DIRS = 20;
/** Writing, backing up and removing 40,000 files on a busy shared disk took over the default 120 s once (not a failure of Cairn). */
const HOOK_TIMEOUT_MS = 600_000;

/** Runs the CLI through a shell that first lowers its open-file limit, as a user's login shell may have it. */
function cairnWithFileLimit(limit: number, args: string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-c", `ulimit -n ${limit} && exec "$0" "$@"`, process.execPath, CLI, ...args], {
      env: { ...process.env, CAIRN_PASSWORD: PASSWORD },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d) => out.push(d));
    child.stderr.on("data", (d) => err.push(d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
  });
}

/**
 * A mail spool, a cache, an uploads folder: tens of thousands of small files restore
 * whole under a low open-file limit, because a restore keeps a bounded number of
 * files open whatever the size of the tree (issue 13: EMFILE after 188,341 files).
 */
describe("a tree of many small files", () => {
  const tmp = tempDir("cairn-many-");
  const src = path.join(tmp.dir, "spool");
  const repo = path.join(tmp.dir, "repo");

  beforeAll(async () => {
    for (let d = 0; d < DIRS; d++) mkdirSync(path.join(src, `d${d}`), { recursive: true });
    // Sizes 0..4 KiB; every 7th file repeats the same bytes, so one blob goes into many files.
    const shared = randomBytes(1000);
    for (let i = 0; i < FILES; i++) writeFileSync(path.join(src, `d${i % DIRS}`, `m${i}.eml`), i % 7 === 0 ? shared : randomBytes(i % 4097));
    await cairnOk(["-r", repo, "init"]);
    await cairnOk(["-r", repo, "backup", src]);
  }, HOOK_TIMEOUT_MS);
  afterAll(() => tmp.cleanup(), HOOK_TIMEOUT_MS);

  it(`restores ${FILES} files byte-identical under ulimit -n 256`, async () => {
    const target = path.join(tmp.dir, "restore");
    const res = await cairnWithFileLimit(256, ["-r", repo, "restore", "latest", "--target", target, "--verify", "--json"]);
    expect(res.code, res.stderr).toBe(0);
    const result = JSON.parse(res.stdout);
    expect(result.files).toBe(FILES);
    expect(result.warnings).toEqual([]);
    expect(result.verifyErrors).toEqual([]);
    expect(describeTree(path.join(target, src))).toEqual(describeTree(src));
  });
});
