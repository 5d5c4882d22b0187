import * as path from "node:path";
import type { Command } from "commander";
import { openCatalog } from "../db/client.js";
import { resealCatalog } from "../db/reseal.js";
import { CairnError } from "../engine/errors.js";
import { keyFile, loadSecretBox, rotateKeyFile } from "../engine/secret-box.js";
import { globals, output } from "./common.js";

/**
 * `cairn platform rotate-key`: adds a new platform secret key to the keyring in
 * the data directory and re-seals every sealed value of the catalog with it. The
 * previous keys stay in the keyring: Temporal's schedules and running workflows
 * hold values sealed with them.
 */
export function register(program: Command): void {
  const platform = program.command("platform").description("the platform's own secrets (reads the catalog, not a repository)");
  platform
    .command("rotate-key")
    .description("rotate the platform secret key and re-seal every stored password, credential and signing key with the new one")
    .option("--data-dir <dir>", "the platform's data directory, holding secret.key (or CAIRN_DATA_DIR; default .cairn)")
    .option("--database-url <url>", "the catalog's PostgreSQL (or DATABASE_URL; default the embedded catalog under the data directory: stop the API first)")
    .action(async (o: { dataDir?: string; databaseUrl?: string }, cmd: Command) => {
      const opts = globals(cmd);
      const dataDir = path.resolve(o.dataDir ?? process.env.CAIRN_DATA_DIR ?? ".cairn");
      const databaseUrl = o.databaseUrl ?? (process.env.DATABASE_URL || undefined);
      // Check that the present key opens the catalog before anything changes.
      await loadSecretBox(dataDir).catch((err: Error) => {
        throw new CairnError(err.message);
      });
      const catalog = await openCatalog({ dataDir, databaseUrl }).catch((err: Error) => {
        throw new CairnError(`cannot open the catalog: ${err.message}`);
      });
      try {
        const box = await rotateKeyFile(dataDir).catch((err: Error) => {
          throw new CairnError(err.message);
        });
        const report = await resealCatalog(catalog.db, box);
        const result = { epoch: box.epoch, keyFile: keyFile(dataDir), ...report };
        output(opts, result, () =>
          [
            `the platform key is now epoch ${box.epoch} (${result.keyFile}); ${report.resealed} sealed values re-sealed with it`,
            "give the new key file to every worker and API process that does not share this data directory; the previous keys stay in it for what Temporal holds",
          ].join("\n"),
        );
      } finally {
        await catalog.close();
      }
    });
}
