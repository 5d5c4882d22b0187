import { writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PASSWORD } from "./helpers.js";
import { cairnPg, cairnPgOk, initCluster, pgTempDir, type PgCluster } from "./postgres.js";

/** Logical dumps: one entry per table, whole-database and single-table restores that drop nothing unasked. */
describe("cairn pg dump / restore-logical", () => {
  const tmp = pgTempDir();
  const repo = path.join(tmp.dir, "repo");
  const passwordFile = path.join(tmp.dir, "password");
  const r = (...args: string[]) => ["-r", repo, "--password-file", passwordFile, ...args];
  const tables = ["customers", "orders", "notes"];
  let pg: PgCluster;
  let dumpId = "";
  const original: Record<string, string> = {};

  const digest = (db: string, table: string) => pg.sql(`SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM ${table} t`, db);
  const databases = async () => (await pg.sql("SELECT datname FROM pg_database ORDER BY 1")).split("\n");

  beforeAll(async () => {
    writeFileSync(passwordFile, PASSWORD);
    await cairnPgOk(r("init"));
    pg = await initCluster(tmp.dir);
    await pg.sql("CREATE DATABASE shop");
    await pg.sql("CREATE DATABASE crm");
    await pg.sql(`
      CREATE TABLE customers (id int PRIMARY KEY, name text, joined date);
      INSERT INTO customers SELECT g, 'customer ' || md5(g::text) || repeat('x', 40), date '2020-01-01' + g % 1000 FROM generate_series(1, 100000) g;
      CREATE TABLE orders (id serial PRIMARY KEY, customer int REFERENCES customers, total numeric(10,2));
      INSERT INTO orders (customer, total) SELECT g % 100000 + 1, g * 1.5 FROM generate_series(1, 2000) g;
      CREATE TABLE notes (id int, body text);
      INSERT INTO notes VALUES (1, 'first'), (2, 'it''s quoted'), (3, NULL);`, "shop");
    await pg.sql("CREATE TABLE contacts AS SELECT generate_series(1, 10) AS id", "crm");
    for (const t of tables) original[t] = await digest("shop", t);
    dumpId = JSON.parse((await cairnPgOk(r("--json", "pg", "dump", "--url", pg.url))).stdout).id;
  }, 180_000);

  afterAll(async () => {
    await pg?.destroy();
    tmp.cleanup();
  });

  it("records every database, and an unchanged table costs nothing in the next dump", async () => {
    const snaps = JSON.parse((await cairnPgOk(r("--json", "snapshots"))).stdout);
    const first = snaps.find((s: { id: string }) => s.id === dumpId);
    expect(first.tags).toContain("pg-logical");
    expect(first.source.databases.map((d: { name: string }) => d.name).sort()).toEqual(["crm", "postgres", "shop"]);

    await pg.sql("INSERT INTO orders (customer, total) VALUES (1, 9.99)", "shop");
    const second = JSON.parse((await cairnPgOk(r("--json", "pg", "dump", "--url", pg.url, "--database", "shop"))).stdout);
    // customers is about 10 MB of rows; only orders and the table of contents changed.
    expect(first.summary.dataAdded).toBeGreaterThan(8 * 1024 * 1024);
    expect(second.summary.dataAdded).toBeLessThan(512 * 1024);
    await pg.sql("DELETE FROM orders WHERE total = 9.99", "shop");
  });

  it("previews, then restores a whole database into a new one with identical tables", async () => {
    const preview = await cairnPgOk(r("pg", "restore-logical", dumpId, "--url", pg.url, "--database", "shop", "--into", "shop_copy", "--preview"));
    for (const t of tables) expect(preview.stdout).toMatch(new RegExp(`TABLE DATA public ${t} `));
    expect(await databases()).not.toContain("shop_copy");

    await cairnPgOk(r("pg", "restore-logical", dumpId, "--url", pg.url, "--database", "shop", "--into", "shop_copy"));
    for (const t of tables) expect(await digest("shop_copy", t)).toBe(original[t]);

    const again = await cairnPg(r("pg", "restore-logical", dumpId, "--url", pg.url, "--database", "shop", "--into", "shop_copy"));
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('database "shop_copy" exists');
  });

  it("restores one table into the existing database and leaves the other tables as they are", async () => {
    await pg.sql("DELETE FROM orders WHERE id > 1000; DELETE FROM customers WHERE id > 50000 AND id NOT IN (SELECT customer FROM orders)", "shop");
    await pg.sql("INSERT INTO notes VALUES (4, 'written after the dump')", "shop");
    const damaged = await digest("shop", "customers");
    const notesNow = await digest("shop", "notes");

    const refused = await cairnPg(r("pg", "restore-logical", dumpId, "--url", pg.url, "--database", "shop", "--table", "orders"));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("--clean");
    expect(await digest("shop", "customers")).toBe(damaged);

    await cairnPgOk(r("pg", "restore-logical", dumpId, "--url", pg.url, "--database", "shop", "--table", "orders", "--clean"));
    expect(await digest("shop", "orders")).toBe(original.orders);
    expect(await digest("shop", "notes")).toBe(notesNow);
    expect(await digest("shop", "customers")).toBe(damaged);
    expect(await pg.sql("SELECT count(*) FROM pg_constraint WHERE conrelid = 'orders'::regclass AND contype = 'p'", "shop")).toBe("1");
  });
});
