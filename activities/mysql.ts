import { existsSync } from "node:fs";
import { ApplicationFailure } from "@temporalio/common";
import type { BackupResult } from "../engine/archiver.js";
import { CairnError } from "../engine/errors.js";
import type { Repository } from "../engine/repository.js";
import { loginOf, parseMysqlUrl, withOptionFile } from "../sources/mysql/connection.js";
import { takeMysqlDump } from "../sources/mysql/logical.js";
import { serverName, takeMysqlPhysical } from "../sources/mysql/physical.js";
import { PERMANENT_FAILURES, type MysqlSource } from "../workflows/messages.js";
import { allowedAddress, unsealPassword, type PostgresSnapshotOptions } from "./postgres.js";
import type { ActivityDeps } from "./repository.js";

/**
 * Runs `fn` with an option file (0600, removed afterwards) holding the plan's login:
 * the password unsealed here, the host judged by the execution policy on this worker
 * and replaced by the address that was judged.
 */
async function withPlanLogin<T>(source: MysqlSource, deps: Pick<ActivityDeps, "policy" | "secretBox">, fn: (optionFile: string) => Promise<T>): Promise<T> {
  const password = unsealPassword(source.sealedPassword, deps);
  let connection;
  try {
    connection = parseMysqlUrl(source.url);
  } catch (err) {
    throw ApplicationFailure.nonRetryable(`${(err as Error).message}; change the plan's source.url`, PERMANENT_FAILURES.invalidRequest);
  }
  return withOptionFile(loginOf(connection, password, await allowedAddress(connection.host, deps)), fn);
}

/** Errors of the MariaDB programs that no retry fixes (wrong credentials, a database that does not exist, a missing program) fail without retry. */
export function mysqlFailure(err: unknown, planName: string): unknown {
  if (!(err instanceof CairnError)) return err;
  if (/Access denied|Unknown database|has no database|no table matches|was not found: install|is not on this machine|command denied|privilege/i.test(err.message)) {
    return ApplicationFailure.nonRetryable(`plan ${planName}: ${err.message}`, PERMANENT_FAILURES.invalidRequest);
  }
  return err;
}

/** Connects once to prove the plan's server answers with these credentials; a physical plan must run where the server's data directory is. */
export async function checkMysqlSource(source: MysqlSource, deps: Pick<ActivityDeps, "policy" | "secretBox">, planName: string): Promise<void> {
  try {
    await withPlanLogin(source, deps, async (optionFile) => {
      const { datadir } = await serverName(optionFile);
      if (source.mode === "physical" && !existsSync(datadir)) {
        throw ApplicationFailure.nonRetryable(
          `plan ${planName}: the server's data directory ${datadir} is not on this worker's machine; mariadb-backup reads the data files, so run the plan's worker on the database host, or use mode "logical"`,
          PERMANENT_FAILURES.invalidRequest,
        );
      }
    });
  } catch (err) {
    throw mysqlFailure(err, planName);
  }
}

/** Takes the plan's logical dump or physical backup into the open repository. */
export async function snapshotMysql(repo: Repository, source: MysqlSource, deps: Pick<ActivityDeps, "policy" | "secretBox">, planName: string, o: PostgresSnapshotOptions): Promise<BackupResult> {
  try {
    return await withPlanLogin<BackupResult>(source, deps, (optionFile) =>
      source.mode === "physical" ? takeMysqlPhysical(repo, { ...o, optionFile }) : takeMysqlDump(repo, { ...o, optionFile, databases: source.databases, tables: source.includeTables }),
    );
  } catch (err) {
    throw mysqlFailure(err, planName);
  }
}
