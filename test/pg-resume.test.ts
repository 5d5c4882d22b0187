import { spawn } from "node:child_process";
import { readdirSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalBackend } from "../backends/local.js";
import { Repository } from "../engine/repository.js";
import { CLI, PASSWORD, cairnOk } from "./helpers.js";
import { cairnPgOk, initCluster, pgTempDir, type PgCluster } from "./postgres.js";

function countPacks(repo: string): number {
  let n = 0;
  for (const d of readdirSync(path.join(repo, "data"), { withFileTypes: true })) {
    if (d.isDirectory()) n += readdirSync(path.join(repo, "data", d.name)).filter((f) => !f.startsWith(".tmp-")).length;
  }
  return n;
}

/**
 * A base backup killed half way and run again does not upload again what already
 * reached the repository: packs are content-addressed and indexed every few packs,
 * and pg_basebackup streams the same pages again, so their blobs are found.
 */
describe("cairn pg backup killed half way, then run again", () => {
  const tmp = pgTempDir();
  const repo = path.join(tmp.dir, "repo");
  const passwordFile = path.join(tmp.dir, "password");
  const r = (...args: string[]) => ["-r", repo, "--password-file", passwordFile, ...args];
  let pg: PgCluster;

  beforeAll(async () => {
    writeFileSync(passwordFile, PASSWORD);
    await cairnPgOk(r("init", "--pack-size", "4"));
    pg = await initCluster(tmp.dir);
    // About 110 MB of incompressible rows (random bytes, stored inline), so packs fill at the pace data is read.
    await pg.sql("CREATE TABLE noise (id int, b bytea); ALTER TABLE noise ALTER COLUMN b SET STORAGE EXTERNAL");
    await pg.sql("INSERT INTO noise SELECT g, decode(l.s, 'hex') FROM generate_series(1, 100000) g, LATERAL (SELECT string_agg(md5(x::text || random()::text || g::text), '') AS s FROM generate_series(1, 60) x) l");
    await pg.sql("CHECKPOINT");
  }, 240_000);

  afterAll(async () => {
    await pg?.destroy();
    tmp.cleanup();
  });

  it("reuses the indexed packs of the killed run: only what had not landed is uploaded again", async () => {
    const owner = statSync(tmp.dir);
    const child = spawn(process.execPath, [CLI, ...r("pg", "backup", "--url", pg.url)], { uid: owner.uid, gid: owner.gid, stdio: "ignore" });
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    let killed = false;
    while (!killed && child.exitCode === null) {
      if (readdirSync(repo).includes("data") && countPacks(repo) >= 14) {
        child.kill("SIGKILL");
        killed = true;
      } else await new Promise((res) => setTimeout(res, 20));
    }
    await exited;
    expect(killed).toBe(true);
    expect(readdirSync(repo).includes("snapshots") ? readdirSync(path.join(repo, "snapshots")) : []).toEqual([]);

    const opened = await Repository.open(new LocalBackend(repo), PASSWORD, { threads: 0 });
    let indexed = 0;
    const landed = new Set<string>();
    for (const f of (await opened.indexFilesWithEntries()).values()) {
      for (const p of f.packs) for (const b of p.blobs) {
        indexed += b.length;
        landed.add(b.id.toString("hex"));
      }
    }
    const killedRunIndexes = new Set(opened.indexFiles.keys());
    await opened.close();
    // At least one index file (written every 8 packs) reached the repository before the kill.
    expect(indexed).toBeGreaterThan(8 * 3 * 1024 * 1024);

    const resumed = JSON.parse((await cairnPgOk(r("--json", "pg", "backup", "--url", pg.url))).stdout);
    const total = resumed.summary.totalBytes;
    expect(total).toBeGreaterThan(100_000_000);
    // What the killed run had stored and indexed is not stored again (a pack or two in flight at the kill may be).
    expect(resumed.summary.dataAddedPacked).toBeLessThanOrEqual(total - indexed + 3 * 4 * 1024 * 1024);
    expect(resumed.summary.dataAddedPacked).toBeLessThan(total * 0.8);
    // Not one blob the killed run had indexed is in a pack the second run wrote.
    const after = await Repository.open(new LocalBackend(repo), PASSWORD, { threads: 0 });
    let again = 0;
    let newBytes = 0;
    for (const [id, f] of await after.indexFilesWithEntries()) {
      if (killedRunIndexes.has(id)) continue;
      for (const p of f.packs) for (const b of p.blobs) {
        newBytes += b.length;
        if (landed.has(b.id.toString("hex"))) again++;
      }
    }
    await after.close();
    // The second run stored a real share of the data (super-blocks of 32 pages), so "not one again" means something.
    expect(newBytes).toBeGreaterThan(8 * 1024 * 1024);
    expect(again).toBe(0);
    const check = JSON.parse((await cairnOk(["-r", repo, "--password-file", passwordFile, "--json", "check"])).stdout);
    expect(check.errors).toEqual([]);
  }, 300_000);
});
