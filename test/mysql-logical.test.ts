import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cairn, cairnOk } from "./helpers.js";
import { BACKUP_PASSWORD, checksums, initMariaDb, mysqlTempDir, type MariaDb } from "./mysql.js";

/** Logical dumps of MariaDB: one entry per table; whole-database and single-table restores with identical checksums, dropping nothing unasked. */
describe("cairn mysql backup --logical / restore", () => {
  const tmp = mysqlTempDir();
  const repo = path.join(tmp.dir, "repo");
  const scratch = path.join(tmp.dir, "scratch");
  const dbPasswordFile = path.join(tmp.dir, "db-password");
  const tables = ["customers", "orders", "notes"];
  const env = { CAIRN_TMPDIR: scratch };
  const r = (...args: string[]) => ["-r", repo, ...args];
  const withLogin = (...args: string[]) => [...args, "--url", db.url, "--db-password-file", dbPasswordFile];
  let db: MariaDb;
  let dumpId = "";
  let original: Record<string, string> = {};

  beforeAll(async () => {
    mkdirSync(scratch);
    writeFileSync(dbPasswordFile, BACKUP_PASSWORD, { mode: 0o600 });
    await cairnOk(r("init"));
    db = await initMariaDb(tmp.dir);
    await db.sql("CREATE DATABASE shop; CREATE DATABASE crm");
    await db.sql(
      `CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(200), joined DATE, photo BLOB);
       INSERT INTO customers SELECT seq, CONCAT('customer ', MD5(seq), REPEAT('x', 40)), '2020-01-01' + INTERVAL seq % 1000 DAY, UNHEX(MD5(seq)) FROM seq_1_to_50000;
       CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, customer INT, total DECIMAL(10,2), FOREIGN KEY (customer) REFERENCES customers (id));
       INSERT INTO orders (customer, total) SELECT seq % 50000 + 1, seq * 1.5 FROM seq_1_to_2000;
       CREATE TABLE notes (id INT, body TEXT) DEFAULT CHARSET utf8mb4;
       INSERT INTO notes VALUES (1, 'first'), (2, 'it''s "quoted"\\nand split'), (3, NULL), (4, 'crème brûlée 🍮');
       CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 1000;
       CREATE TRIGGER orders_positive BEFORE INSERT ON orders FOR EACH ROW SET NEW.total = ABS(NEW.total);
       CREATE PROCEDURE order_count() SELECT COUNT(*) FROM orders;`,
      "shop",
    );
    await db.sql("CREATE TABLE contacts (id INT); INSERT INTO contacts VALUES (1), (2)", "crm");
    original = await checksums(db, "shop", tables);
    dumpId = JSON.parse((await cairnOk(r("--json", "mysql", "backup", ...withLogin("--logical")), { env })).stdout).id;
  }, 180_000);

  afterAll(async () => {
    await db?.destroy();
    tmp.cleanup();
  });

  it("records each database's tables as one entry each, and leaves no option file behind", async () => {
    const snaps = JSON.parse((await cairnOk(r("--json", "snapshots"))).stdout);
    const dump = snaps.find((s: { id: string }) => s.id === dumpId);
    expect(dump.tags).toContain("mysql-logical");
    expect(dump.source.databases.map((d: { name: string }) => d.name)).toEqual(["crm", "shop"]);
    expect(dump.source.databases[1].tables).toEqual(["customers", "notes", "orders"]);
    const ls = (await cairnOk(r("ls", dumpId))).stdout;
    for (const t of tables) expect(ls).toContain(`/mysqldump/shop/tables/${t}.sql`);
    expect(readdirSync(scratch)).toEqual([]);

    // An unchanged table costs nothing in the next dump.
    await db.sql("INSERT INTO notes VALUES (5, 'new')", "shop");
    const second = JSON.parse((await cairnOk(r("--json", "mysql", "backup", ...withLogin("--database", "shop")), { env })).stdout);
    expect(dump.summary.dataAdded).toBeGreaterThan(4 * 1024 * 1024);
    expect(second.summary.dataAdded).toBeLessThan(256 * 1024);
    await db.sql("DELETE FROM notes WHERE id = 5", "shop");
  });

  it("restores a whole database into a new one with identical table checksums, and refuses an existing one", async () => {
    const preview = await cairnOk(r("mysql", "restore", dumpId, ...withLogin("--database", "shop", "--into", "shop_copy", "--preview")));
    for (const t of tables) expect(preview.stdout).toContain(`table ${t}`);
    expect(await db.sql("SHOW DATABASES LIKE 'shop_copy'")).toBe("");

    await cairnOk(r("mysql", "restore", dumpId, ...withLogin("--database", "shop", "--into", "shop_copy")), { env });
    expect(await checksums(db, "shop_copy", tables)).toEqual(original);
    expect(await db.sql("SELECT COUNT(*) FROM big_orders", "shop_copy")).toBe(await db.sql("SELECT COUNT(*) FROM big_orders", "shop"));
    expect(await db.sql("SHOW PROCEDURE STATUS WHERE Db = 'shop_copy'")).toContain("order_count");
    expect(await db.sql("SHOW TRIGGERS", "shop_copy")).toContain("orders_positive");

    const again = await cairn(r("mysql", "restore", dumpId, ...withLogin("--database", "shop", "--into", "shop_copy")));
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('database "shop_copy" exists');
  });

  it("restores one table into the existing database, only with --clean, and leaves the other tables as they are", async () => {
    await db.sql("DELETE FROM orders WHERE id > 1000; UPDATE customers SET name = 'changed' WHERE id < 100", "shop");
    await db.sql("INSERT INTO notes VALUES (6, 'written after the dump')", "shop");
    const damaged = await checksums(db, "shop", ["orders", "customers", "notes"]);

    const refused = await cairn(r("mysql", "restore", dumpId, ...withLogin("--database", "shop", "--table", "orders")));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("--clean");
    expect(await checksums(db, "shop", ["orders"])).toEqual({ orders: damaged.orders });

    await cairnOk(r("mysql", "restore", dumpId, ...withLogin("--database", "shop", "--table", "orders", "--clean")), { env });
    expect(await checksums(db, "shop", ["orders"])).toEqual({ orders: original.orders });
    expect(await checksums(db, "shop", ["customers", "notes"])).toEqual({ customers: damaged.customers, notes: damaged.notes });
    expect(await db.sql("SHOW TRIGGERS", "shop")).toContain("orders_positive");
    expect(readdirSync(scratch)).toEqual([]);
  });

  it("says what to do about a wrong password or an unreachable server, without echoing the password", async () => {
    writeFileSync(path.join(tmp.dir, "wrong"), "not the password");
    const wrong = await cairn(r("mysql", "backup", "--url", db.url, "--db-password-file", path.join(tmp.dir, "wrong")), { env });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain("Access denied");
    expect(wrong.stderr).toContain("check the user and password");
    expect(wrong.stderr).not.toContain("not the password");

    const down = await cairn(r("mysql", "backup", "--url", "mysql://someone@127.0.0.1:1"), { env: { ...env, MYSQL_PWD: "pw" } });
    expect(down.code).toBe(1);
    expect(down.stderr).toContain("check the host and port");

    const inUrl = await cairn(r("mysql", "backup", "--url", `mysql://someone:hunter2@127.0.0.1:${db.port}`));
    expect(inUrl.code).toBe(1);
    expect(inUrl.stderr).toContain("MYSQL_PWD");
    expect(readdirSync(scratch)).toEqual([]);
  });
});
