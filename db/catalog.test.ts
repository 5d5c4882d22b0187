import { randomBytes } from "node:crypto";
import { eq } from "drizzle-orm";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../test/helpers.js";
import { openCatalog, pingCatalog, type OpenCatalog } from "./client.js";
import { apiTokens, plans, repositories } from "./schema.js";

const ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres";

/** The same checks on both drivers: users run either, and the migrations must suit both. */
function catalogContract(name: string, open: () => Promise<OpenCatalog>) {
  describe(name, () => {
    let catalog: OpenCatalog;
    beforeAll(async () => {
      catalog = await open();
    });
    afterAll(async () => {
      await catalog?.close();
    });

    it("applies the migrations and answers a ping", async () => {
      await pingCatalog(catalog.db);
    });

    it("keeps repositories, plans and token hashes, and refuses duplicates", async () => {
      const { db } = catalog;
      await db.insert(repositories).values({ id: "r1", name: "main", url: "/srv/repo", sealedPassword: "c2VhbGVk" });
      await db.insert(plans).values({
        id: "p1",
        name: "www",
        repositoryId: "r1",
        source: { type: "files", paths: ["/var/www"], exclude: ["*.tmp"] },
        schedule: { cron: "0 3 * * *", timezone: "Europe/Paris" },
        retention: { keepDaily: 7, keepWithin: "30d" },
      });
      await db.insert(apiTokens).values({ id: "t1", name: "admin", tokenHash: "ab".repeat(32), role: "admin" });

      const [plan] = await db.select().from(plans).where(eq(plans.id, "p1"));
      expect(plan.source).toEqual({ type: "files", paths: ["/var/www"], exclude: ["*.tmp"] });
      expect(plan.schedule).toEqual({ cron: "0 3 * * *", timezone: "Europe/Paris" });
      expect(plan.paused).toBe(false);
      expect(plan.createdAt).toBeInstanceOf(Date);

      await expect(db.insert(repositories).values({ id: "r2", name: "main", url: "/elsewhere", sealedPassword: "x" })).rejects.toThrow();
      await expect(db.insert(apiTokens).values({ id: "t2", name: "again", tokenHash: "ab".repeat(32), role: "admin" })).rejects.toThrow();
    });

    it("refuses to delete a repository that plans still use", async () => {
      await expect(catalog.db.delete(repositories).where(eq(repositories.id, "r1"))).rejects.toThrow();
      await catalog.db.delete(plans).where(eq(plans.id, "p1"));
      await catalog.db.delete(repositories).where(eq(repositories.id, "r1"));
      expect(await catalog.db.select().from(repositories)).toEqual([]);
    });
  });
}

const pgliteDir = tempDir("cairn-catalog-");
afterAll(() => pgliteDir.cleanup());
catalogContract("catalog on PGlite", () => openCatalog({ dataDir: pgliteDir.dir }));

describe("PGlite catalog on disk", () => {
  it("keeps its rows across restarts and migrates only once", async () => {
    const { dir, cleanup } = tempDir("cairn-catalog-");
    try {
      const first = await openCatalog({ dataDir: dir });
      await first.db.insert(repositories).values({ id: "r1", name: "kept", url: "/srv/kept", sealedPassword: "x" });
      await first.close();
      const second = await openCatalog({ dataDir: dir });
      expect((await second.db.select().from(repositories)).map((r) => r.name)).toEqual(["kept"]);
      await second.close();
    } finally {
      cleanup();
    }
  });
});

const dbName = `cairn_test_${randomBytes(6).toString("hex")}`;
const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => undefined });
afterAll(async () => {
  await admin.unsafe(`drop database if exists ${dbName} with (force)`);
  await admin.end();
});
catalogContract("catalog on PostgreSQL", async () => {
  await admin.unsafe(`create database ${dbName}`);
  return openCatalog({ dataDir: "/nonexistent", databaseUrl: `postgres://postgres@127.0.0.1:5432/${dbName}` });
});
