import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LocalBackend } from "../backends/local.js";
import { Repository } from "../engine/repository.js";
import { CLI, PASSWORD, cairnOk, tempDir } from "./helpers.js";
import { describeTree } from "./tree-fixtures.js";

function countPacks(repo: string): number {
  let n = 0;
  let dirs: string[];
  try {
    dirs = readdirSync(path.join(repo, "data"));
  } catch {
    return 0;
  }
  for (const d of dirs) n += readdirSync(path.join(repo, "data", d)).filter((f) => !f.startsWith(".tmp-")).length;
  return n;
}

describe("a backup killed with SIGKILL half way", () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());

  it("leaves a repository that checks clean, and the next backup reuses the packs that landed", async () => {
    const src = path.join(tmp.dir, "src");
    const repo = path.join(tmp.dir, "repo");
    mkdirSync(src);
    const fileSize = 8 * 1024 * 1024;
    const files = 20;
    for (let i = 0; i < files; i++) writeFileSync(path.join(src, `part-${String(i).padStart(2, "0")}.bin`), randomBytes(fileSize));
    const total = fileSize * files;
    await cairnOk(["-r", repo, "init", "--pack-size", "4"]);

    // gzip:9 on incompressible data is slow, which gives the test time to kill the backup half way.
    const child = spawn(process.execPath, [CLI, "-r", repo, "backup", src, "--compression", "gzip:9"], {
      env: { ...process.env, CAIRN_PASSWORD: PASSWORD },
      stdio: "ignore",
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    let killed = false;
    while (!killed) {
      if (countPacks(repo) >= 20) {
        child.kill("SIGKILL");
        killed = true;
      } else if (child.exitCode !== null) break;
      else await new Promise((r) => setTimeout(r, 5));
    }
    await exited;
    expect(killed).toBe(true);

    // Nothing half-written is visible, and no snapshot claims the partial data.
    expect(readdirSync(repo).includes("snapshots") ? readdirSync(path.join(repo, "snapshots")) : []).toEqual([]);
    const check = await cairnOk(["-r", repo, "check", "--read-data", "--json"]);
    expect(JSON.parse(check.stdout).errors).toEqual([]);

    const opened = await Repository.open(new LocalBackend(repo), PASSWORD, { threads: 0 });
    let indexedBytes = 0;
    for (const f of (await opened.indexFilesWithEntries()).values()) for (const p of f.packs) indexedBytes += p.blobs.reduce((n, b) => n + b.length, 0);
    await opened.close();
    expect(indexedBytes).toBeGreaterThan(total / 4);

    const resumed = JSON.parse((await cairnOk(["-r", repo, "backup", src, "--json"])).stdout);
    // Only what had not landed (and been indexed) is uploaded again.
    expect(resumed.summary.dataAddedPacked).toBeLessThanOrEqual(total - indexedBytes + 2 * 4 * 1024 * 1024);
    expect(resumed.summary.dataAddedPacked).toBeLessThan(total * 0.8);

    await cairnOk(["-r", repo, "check", "--read-data"]);
    const target = path.join(tmp.dir, "restore");
    await cairnOk(["-r", repo, "restore", "latest", "--target", target]);
    expect(describeTree(path.join(target, src))).toEqual(describeTree(src));
  });
});
