/**
 * Include and exclude patterns with a "/" through the CLI: anchored on the
 * absolute path as restic's are, and a restore whose include selects nothing fails.
 */
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cairn, cairnOk, tempDir } from "./helpers.js";

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

describe("path patterns with a slash (CLI, local repository)", () => {
  const tmp = tempDir();
  const www = path.join(tmp.dir, "srv", "www");
  const repo = path.join(tmp.dir, "repo");
  const r = (...args: string[]) => ["-r", repo, ...args];

  beforeAll(async () => {
    for (const [p, body] of Object.entries({
      "index.html": "<h1>hi</h1>",
      "invoices/inv_1.txt": "one",
      "invoices/inv_10.txt": "ten",
      "invoices/inv_2.txt": "two",
      "tmp/cache.bin": "cache",
      "tmp/.lock": "lock",
      "archive/tmp/keep.txt": "not the top-level tmp",
    })) {
      mkdirSync(path.dirname(path.join(www, p)), { recursive: true });
      writeFileSync(path.join(www, p), body);
    }
    await cairnOk(r("init"));
  });
  afterAll(() => tmp.cleanup());

  it("backup --exclude '/abs/dir/*' leaves out that directory's entries, and only those", async () => {
    await cairnOk(r("backup", www, "--exclude", `${www}/tmp/*`, "--exclude", "*.html"));
    const paths = (JSON.parse((await cairnOk(r("ls", "latest", "--json"))).stdout) as { path: string }[]).map((e) => e.path);
    expect(paths).toContain(`${www}/tmp`);
    expect(paths.filter((p) => p.startsWith(`${www}/tmp/`))).toEqual([]);
    expect(paths).toContain(`${www}/archive/tmp/keep.txt`);
    expect(paths).toContain(`${www}/invoices/inv_2.txt`);
    expect(paths).not.toContain(`${www}/index.html`);
  });

  it("restore --include '/abs/dir/inv_1*.txt' restores exactly the files it names", async () => {
    const target = path.join(tmp.dir, "restore-abs");
    const res = JSON.parse((await cairnOk(r("restore", "latest", "--target", target, "--include", `${www}/invoices/inv_1*.txt`, "--json"))).stdout);
    expect(res.files).toBe(2);
    expect(filesUnder(target)).toEqual([path.join(www.slice(1), "invoices/inv_1.txt"), path.join(www.slice(1), "invoices/inv_10.txt")]);
  });

  it("restore --include of a relative path with a slash matches it at any depth", async () => {
    const target = path.join(tmp.dir, "restore-rel");
    await cairnOk(r("restore", "latest", "--target", target, "--include", "invoices/inv_2.txt"));
    expect(filesUnder(target)).toEqual([path.join(www.slice(1), "invoices/inv_2.txt")]);
  });

  it("a restore whose include matches nothing fails and says how patterns are read; one of several is a warning", async () => {
    const target = path.join(tmp.dir, "restore-none");
    const none = await cairn(r("restore", "latest", "--target", target, "--include", "/srv/www/invoices/inv_1*.txt"));
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no path in the snapshot matches the include pattern "\/srv\/www\/invoices\/inv_1\*\.txt"/);
    expect(none.stderr).toMatch(/cairn ls SNAPSHOT/);
    const dry = await cairn(r("restore", "latest", "--target", target, "--include", "*.pdf", "--dry-run"));
    expect(dry.code).toBe(1);
    const some = JSON.parse((await cairnOk(r("restore", "latest", "--target", target, "--include", "*.pdf", "--include", "inv_2.txt", "--json"))).stdout);
    expect(some.files).toBe(1);
    expect(some.warnings).toEqual(['the include pattern "*.pdf" matched nothing in the snapshot']);
  });
});
