import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { expect } from "vitest";
import { cairnOk, tempDir } from "./helpers.js";
import { digestTree } from "./tree-fixtures.js";


/**
 * `cairn init`, `backup`, `snapshots`, `restore` and `check --read-data` against a
 * repository URL, as a user would run them; the restore must be byte-identical.
 */
export async function expectCliRoundTrip(repo: string, env: Record<string, string>): Promise<void> {
  const tmp = tempDir("cairn-cli-");
  try {
    const src = path.join(tmp.dir, "src");
    mkdirSync(path.join(src, "docs"), { recursive: true });
    writeFileSync(path.join(src, "random.bin"), randomBytes(3 * 1024 * 1024 + 17));
    writeFileSync(path.join(src, "docs", "notes.txt"), "backups are only as good as their restores\n".repeat(5000));
    writeFileSync(path.join(src, "docs", "empty"), "");
    const opts = { env };

    const init = await cairnOk(["-r", repo, "init", "--json"], opts);
    expect(JSON.parse(init.stdout).location).toBe(repo);
    await cairnOk(["-r", repo, "backup", src], opts);
    const snapshots = JSON.parse((await cairnOk(["-r", repo, "snapshots", "--json"], opts)).stdout);
    expect(snapshots).toHaveLength(1);
    const target = path.join(tmp.dir, "restore");
    await cairnOk(["-r", repo, "restore", "latest", "--target", target], opts);
    expect(digestTree(path.join(target, src))).toEqual(digestTree(src));
    await cairnOk(["-r", repo, "check", "--read-data"], opts);
    const again = await cairnOk(["-r", repo, "init"], opts, 1);
    expect(again.stderr).toContain("a repository already exists");
  } finally {
    tmp.cleanup();
  }
}
