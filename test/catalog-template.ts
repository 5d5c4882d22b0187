/**
 * A migrated, empty PGlite catalog made once per run and copied into the data
 * directory of each test that starts an API. A new PGlite catalog runs initdb in
 * WebAssembly: 5 to 15 s of one core on this 2-core machine, paid again by every
 * test file; opening a copy of a made one takes about 1 s. The copy is what the
 * API's first start would have made (the same migrations, no rows), and the API
 * still opens and migrates it as always.
 *
 * The first file that asks builds it (the others make their own meanwhile, as
 * without a template); db/catalog.test.ts and that first file keep the path from
 * an empty directory covered.
 */
import { closeSync, cpSync, existsSync, mkdirSync, openSync, renameSync } from "node:fs";
import * as path from "node:path";
import { inject } from "vitest";
import { openCatalog } from "../db/client.js";

/** Puts a copy of the run's catalog template at `dataDir`/catalog, unless a catalog is there already or the run has no template (yet). */
export async function seedCatalog(dataDir: string): Promise<void> {
  const target = path.join(dataDir, "catalog");
  const base = inject("catalogTemplateDir");
  if (!base || existsSync(target)) return;
  const template = path.join(base, "catalog");
  if (!existsSync(template)) {
    // Built once: by the file whose exclusive create of the lock succeeds.
    try {
      closeSync(openSync(path.join(base, "lock"), "wx"));
    } catch {
      return;
    }
    const building = path.join(base, "building");
    const catalog = await openCatalog({ dataDir: building });
    await catalog.close();
    // Whole or absent: others see it only once it is complete.
    renameSync(path.join(building, "catalog"), template);
  }
  mkdirSync(dataDir, { recursive: true });
  cpSync(template, target, { recursive: true });
}
