/**
 * Snapshots made by plans (host plan-<id>, tag plan:<name>) among others, from
 * the CLI: --plan selects them, "latest" alone says when it had to choose, and
 * the snapshots table keeps its columns aligned whatever the host names.
 */
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cairn, cairnOk, tempDir } from "./helpers.js";

describe("plan snapshots from the CLI", () => {
  const tmp = tempDir();
  const repo = path.join(tmp.dir, "repo");
  const r = (...args: string[]) => ["-r", repo, ...args];
  const www = { id: "5f0c2a9e-1b3d-4c7e-9a2f-0123456789ab", name: "www" };
  const db = { id: "9d8c7b6a-0000-4111-8222-333344445555", name: "db" };
  const ids: Record<string, string> = {};

  /** Backs up the directory `source` holding one file whose content is `label`. */
  async function backup(label: string, source: string, plan: { id: string; name: string } | undefined) {
    const dir = path.join(tmp.dir, source);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, `${source}.txt`), label);
    const flags = plan ? ["--host", `plan-${plan.id}`, "--tag", `plan:${plan.name}`] : ["--host", "laptop"];
    ids[label] = JSON.parse((await cairnOk(r("backup", dir, ...flags, "--json"))).stdout).id;
  }

  beforeAll(async () => {
    await cairnOk(r("init"));
    await backup("www-1", "www", www);
    await backup("www-2", "www", www);
    await backup("db-1", "db", db);
    await backup("manual", "home", undefined);
  });
  afterAll(() => tmp.cleanup());

  it("snapshots --plan lists one plan's snapshots, by name or by id", async () => {
    const list = async (plan: string) => (JSON.parse((await cairnOk(r("snapshots", "--plan", plan, "--json"))).stdout) as { id: string }[]).map((s) => s.id);
    expect(await list("www")).toEqual([ids["www-1"], ids["www-2"]]);
    expect(await list(www.id)).toEqual([ids["www-1"], ids["www-2"]]);
    expect(await list("db")).toEqual([ids["db-1"]]);
    expect(await list("nope")).toEqual([]);
  });

  it("restore latest --plan restores that plan's newest snapshot though another plan's is newer, and latest alone warns", async () => {
    const target = path.join(tmp.dir, "restore-www");
    const res = JSON.parse((await cairnOk(r("restore", "latest", "--plan", "www", "--target", target, "--json"))).stdout);
    expect(res.snapshot).toBe(ids["www-2"]);
    const any = await cairnOk(r("restore", "latest", "--target", path.join(tmp.dir, "restore-any"), "--json"));
    expect(JSON.parse(any.stdout).snapshot).toBe(ids.manual);
    expect(any.stderr).toMatch(/warning: "latest" is the newest snapshot of any host or plan: .* of host laptop; the repository holds snapshots of 3 hosts, choose with --plan or --host/);
    const missing = await cairn(r("restore", "latest", "--plan", "nope", "--target", path.join(tmp.dir, "restore-none")));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/none matching the filters/);
  });

  it("ls and dump take --plan for latest, and forget --plan touches only that plan", async () => {
    const ls = JSON.parse((await cairnOk(r("ls", "latest", "--plan", "db", "--json"))).stdout) as { path: string }[];
    expect(ls.map((e) => path.basename(e.path))).toContain("db.txt");
    const dumped = await cairnOk(r("dump", "latest", path.join(tmp.dir, "www", "www.txt"), "--plan", "www"));
    expect(dumped.stdout).toBe("www-2");
    await cairnOk(r("forget", "--plan", "www", "--keep-last", "1"));
    expect(readdirSync(path.join(repo, "snapshots")).sort()).toEqual([ids["www-2"], ids["db-1"], ids.manual].sort());
  });

  it("keeps the snapshots table aligned whatever the lengths of hosts and tags", async () => {
    const out = (await cairnOk(r("snapshots"))).stdout.trimEnd().split("\n");
    const [header, ...rows] = out.slice(0, -1);
    expect(out.at(-1)).toBe("3 snapshots");
    for (const column of ["Time", "Host", "Tags", "Paths"]) {
      const at = header.indexOf(column);
      for (const row of rows) expect(row[at - 1], `${column} in ${JSON.stringify(row)}`).toBe(" ");
      // Every cell starts right under its header (the manual snapshot has no tags).
      for (const row of rows.filter((x) => column !== "Tags" || !x.includes("laptop"))) expect(row[at], `${column} in ${JSON.stringify(row)}`).not.toBe(" ");
    }
    expect(rows.find((l) => l.includes(`plan-${www.id}`))).toContain("plan:www");
  });
});
