import * as path from "node:path";
import type { Command } from "commander";
import { verifyAuditLog } from "../db/audit-checkpoints.js";
import type { AuditVerification } from "../db/audit-log.js";
import { CheckpointRepository } from "../db/audit-repository.js";
import { openCatalog } from "../db/client.js";
import { CairnError } from "../engine/errors.js";
import { globals, output } from "./common.js";

/**
 * `cairn audit verify`: checks the platform's audit log, reading the catalog
 * directly (DATABASE_URL, or the embedded one under the data directory: stop the
 * API first, the embedded catalog takes one process at a time) and the signed
 * checkpoints under the audit directory and in the checkpoint repository. Exit
 * code 1 when the log was tampered with.
 */
export function register(program: Command): void {
  const audit = program.command("audit").description("the platform's audit log (reads the catalog, not a repository)");
  audit
    .command("verify")
    .description("check the audit log's hash chain event by event and against the signed checkpoints; names the first broken sequence number")
    .option("--data-dir <dir>", "the platform's data directory (or CAIRN_DATA_DIR; default .cairn)")
    .option("--audit-dir <dir>", "where the signed checkpoints and pinned keys are (or CAIRN_AUDIT_DIR; default <data-dir>/audit)")
    .option("--database-url <url>", "the catalog's PostgreSQL (or DATABASE_URL; default the embedded catalog under the data directory)")
    .option("--audit-repository <url>", "where the write-once copies of the checkpoints are (or CAIRN_AUDIT_REPOSITORY; credentials from the usual variables)")
    .action(async (o: { dataDir?: string; auditDir?: string; databaseUrl?: string; auditRepository?: string }, cmd: Command) => {
      const opts = globals(cmd);
      const dataDir = path.resolve(o.dataDir ?? process.env.CAIRN_DATA_DIR ?? ".cairn");
      const auditDir = path.resolve(o.auditDir ?? process.env.CAIRN_AUDIT_DIR ?? path.join(dataDir, "audit"));
      const databaseUrl = o.databaseUrl ?? (process.env.DATABASE_URL || undefined);
      const catalog = await openCatalog({ dataDir, databaseUrl }).catch((err: Error) => {
        throw new CairnError(`cannot open the catalog: ${err.message}`);
      });
      const repositoryUrl = o.auditRepository ?? (process.env.CAIRN_AUDIT_REPOSITORY || undefined);
      let result: AuditVerification;
      try {
        const repository = repositoryUrl ? await CheckpointRepository.open(repositoryUrl, process.env, { readOnly: true }) : undefined;
        try {
          result = await verifyAuditLog(catalog.db, auditDir, repository);
        } finally {
          await repository?.close();
        }
      } finally {
        await catalog.close();
      }
      output(opts, result, () => describe(result, repositoryUrl ? `${auditDir} and ${repositoryUrl}` : auditDir));
      if (!result.ok) process.exitCode = 1;
    });
}

function describe(r: AuditVerification, where: string): string {
  const checked = `${r.events} events, ${r.checkpoints} signed checkpoints (${where})`;
  if (r.ok) return `the audit log is intact: ${checked}${r.checkpoints === 0 ? "; without checkpoints a cut tail cannot be seen" : ""}`;
  return `the audit log was tampered with${r.firstBrokenSeq !== undefined ? ` from event ${r.firstBrokenSeq} on` : ""}: ${r.reason}\n(${checked})`;
}
