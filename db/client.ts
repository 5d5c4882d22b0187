import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { PGlite } from "@electric-sql/pglite";
import { sql } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import * as schema from "./schema.js";

/** The catalog database, whichever driver sits under it. */
export type Catalog = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface CatalogOptions {
  /** PostgreSQL connection string; when absent the catalog is an embedded PGlite under `${dataDir}/catalog`. */
  databaseUrl?: string;
  dataDir: string;
}

export interface OpenCatalog {
  db: Catalog;
  /** "pglite" or "postgres", for the logs. */
  driver: "pglite" | "postgres";
  close(): Promise<void>;
}

/**
 * Opens the catalog and applies pending migrations, so a new release upgrades
 * the schema on its first start.
 */
export async function openCatalog(options: CatalogOptions): Promise<OpenCatalog> {
  const migrationsFolder = migrationsDir();
  if (options.databaseUrl) {
    const client = postgres(options.databaseUrl, { max: 10, onnotice: () => undefined });
    const db = drizzlePostgres({ client, schema });
    try {
      await migratePostgres(db, { migrationsFolder });
    } catch (err) {
      await client.end({ timeout: 1 });
      throw new Error(`cannot prepare the catalog database at DATABASE_URL: ${(err as Error).message}. Check that PostgreSQL is running and the URL's user may create tables`, { cause: err });
    }
    return { db, driver: "postgres", close: () => client.end({ timeout: 5 }) };
  }
  const dir = path.join(options.dataDir, "catalog");
  await mkdir(dir, { recursive: true });
  const client = new PGlite(dir);
  await client.waitReady;
  const db = drizzlePglite({ client, schema });
  await migratePglite(db, { migrationsFolder });
  return { db, driver: "pglite", close: () => client.close() };
}

/** Answers whether the catalog takes queries (for /readyz). */
export async function pingCatalog(db: Catalog): Promise<void> {
  await db.execute(sql`select 1`);
}

/**
 * db/migrations holds SQL files that tsc does not copy: from sources they sit
 * beside this file, from dist/db/ they are two levels up in the package.
 */
function migrationsDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.join(here, "migrations"), path.join(here, "..", "..", "db", "migrations")];
  const found = candidates.find((dir) => existsSync(path.join(dir, "meta", "_journal.json")));
  if (!found) throw new Error(`the catalog migrations are missing (looked in ${candidates.join(", ")}); reinstall Cairn`);
  return found;
}
