import { promises as dns } from "node:dns";
import { isIP } from "node:net";
import { ApplicationFailure } from "@temporalio/common";
import type { BackupProgress } from "../engine/archiver.js";
import { CairnError } from "../engine/errors.js";
import type { Repository } from "../engine/repository.js";
import { addressRefusal } from "../policy/destinations.js";
import { takeBaseBackup } from "../sources/postgres/basebackup.js";
import { connectionEnv, parseConnectionUrl, pinnedUrl } from "../sources/postgres/connection.js";
import { logicalDumps, restoreLogical, takeLogicalDump } from "../sources/postgres/logical.js";
import { loadSnapshots, planHost } from "../engine/snapshot.js";
import { query } from "../sources/postgres/tools.js";
import { PERMANENT_FAILURES, type LogicalRestoreInput, type LogicalRestoreJobResult, type PostgresSource } from "../workflows/messages.js";
import { policyFailure, withLockedRepository, type ActivityDeps } from "./repository.js";
import { IntegrityError } from "../engine/crypto.js";

/** A plan's database connection on this worker: the URL pinned to the address the policy allowed, the password in the environment. */
export interface OpenConnection {
  url: string;
  env: NodeJS.ProcessEnv;
}

/**
 * Unseals the source's password and judges the server's host by the execution
 * policy here, on the worker: every address the name resolves to now. The URL
 * returned makes libpq connect to the address that was judged (hostaddr), so a
 * name that resolves elsewhere a moment later is not followed.
 */
export async function openConnection(source: PostgresSource, deps: Pick<ActivityDeps, "policy" | "secretBox">): Promise<OpenConnection> {
  const password = unsealPassword(source.sealedPassword, deps);
  let connection;
  try {
    connection = parseConnectionUrl(source.url);
  } catch (err) {
    throw ApplicationFailure.nonRetryable(`${(err as Error).message}; change the plan's source.url`, PERMANENT_FAILURES.invalidRequest);
  }
  return { url: pinnedUrl(connection.url, await allowedAddress(connection.host, deps)), env: connectionEnv(password) };
}

/** A plan's sealed database password, opened; a worker whose secret key differs fails without retry. */
export function unsealPassword(sealed: string | undefined, deps: Pick<ActivityDeps, "secretBox">): string | undefined {
  try {
    return sealed ? deps.secretBox.open(sealed) : undefined;
  } catch (err) {
    if (!(err instanceof IntegrityError)) throw err;
    throw ApplicationFailure.nonRetryable(
      "the database password of this plan cannot be unsealed: this worker's platform secret key differs from the API's; give the API and every worker the same CAIRN_SECRET_KEY",
      PERMANENT_FAILURES.secretKeyMismatch,
    );
  }
}

/**
 * Judges a database server's host by the execution policy here, on the worker: every
 * address the name resolves to now. Returns the address to connect to, so a name
 * that resolves elsewhere a moment later is not followed.
 */
export async function allowedAddress(host: string, deps: Pick<ActivityDeps, "policy">): Promise<string> {
  const addresses = isIP(host) ? [host] : (await dns.lookup(host, { all: true, verbatim: true })).map((a) => a.address);
  if (!addresses.length) throw new Error(`${host} does not resolve; will try again`);
  for (const address of addresses) {
    const refusal = addressRefusal(deps.policy, host, address);
    if (refusal) throw policyFailure(refusal);
  }
  return addresses[0];
}

/** Errors of PostgreSQL's programs that no retry fixes (wrong credentials, a database that does not exist, a missing program) fail without retry. */
export function postgresFailure(err: unknown, planName: string): unknown {
  if (!(err instanceof CairnError)) return err;
  if (/password authentication failed|no password supplied|does not exist|permission denied|must be superuser|REPLICATION|no pg_hba.conf entry|was not found: install|Cairn's physical backups need/i.test(err.message)) {
    return ApplicationFailure.nonRetryable(`plan ${planName}: ${err.message}`, PERMANENT_FAILURES.invalidRequest);
  }
  return err;
}

/**
 * Connects once to prove the plan's server answers with these credentials; a
 * physical plan's user must be allowed to take a base backup.
 */
export async function checkPostgresSource(source: PostgresSource, deps: Pick<ActivityDeps, "policy" | "secretBox">, planName: string): Promise<void> {
  const conn = await openConnection(source, deps);
  try {
    const [[replication]] = await query(conn.url, "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user", conn.env);
    if (source.mode === "physical" && replication !== "t") {
      throw ApplicationFailure.nonRetryable(
        `plan ${planName}: the user of ${source.url} may not take base backups; ALTER ROLE ... REPLICATION (and allow replication connections in pg_hba.conf), or use mode "logical"`,
        PERMANENT_FAILURES.invalidRequest,
      );
    }
  } catch (err) {
    throw postgresFailure(err, planName);
  }
}

export interface PostgresSnapshotOptions {
  host: string;
  tags?: string[];
  signal: AbortSignal;
  onProgress: (p: BackupProgress) => void;
}

/** Takes the plan's logical dump or base backup into the open repository. */
export async function snapshotPostgres(repo: Repository, source: PostgresSource, deps: Pick<ActivityDeps, "policy" | "secretBox">, planName: string, o: PostgresSnapshotOptions) {
  const conn = await openConnection(source, deps);
  try {
    if (source.mode === "physical") return await takeBaseBackup(repo, { ...o, url: conn.url, env: conn.env, label: `cairn plan ${planName}` });
    return await takeLogicalDump(repo, {
      ...o,
      url: conn.url,
      env: conn.env,
      databases: source.databases,
      tables: source.includeTables,
      excludeTables: source.excludeTables,
      schemas: source.includeSchemas,
    });
  } catch (err) {
    throw postgresFailure(err, planName);
  }
}

/** The activity of a logical plan's restore: one of its dumps, one database, into the plan's server. */
export function logicalRestoreActivities(deps: ActivityDeps) {
  return {
    /**
     * Restores a database of one of the plan's dumps: whole into a database that does
     * not exist yet, or chosen tables into an existing one; nothing is dropped unless
     * `clean`. An object that exists fails the restore without retry.
     */
    async restoreLogicalDump(input: LogicalRestoreInput): Promise<LogicalRestoreJobResult> {
      const conn = await openConnection(input.source, deps);
      return withLockedRepository(input.repository, deps, { exclusive: false, operation: `logical restore of plan ${input.planName}` }, async (repo) => {
        const dumps = logicalDumps(await loadSnapshots(repo)).filter((d) => d.host === planHost(input.planId));
        const matching = input.snapshotRef === "latest" ? dumps.slice(-1) : dumps.filter((d) => d.id.startsWith(input.snapshotRef));
        if (matching.length !== 1) {
          throw ApplicationFailure.nonRetryable(
            matching.length ? `${matching.length} dumps of plan ${input.planName} start with ${input.snapshotRef}; give more characters` : `plan ${input.planName} has no dump ${input.snapshotRef}; list them with GET /v1/snapshots`,
            PERMANENT_FAILURES.invalidRequest,
          );
        }
        try {
          const r = await restoreLogical(repo, matching[0], { url: conn.url, env: conn.env, database: input.database, into: input.into, tables: input.tables, clean: input.clean });
          return { snapshotId: matching[0].id, database: r.database, into: r.into, created: r.created, items: r.items.length };
        } catch (err) {
          if (err instanceof CairnError) throw ApplicationFailure.nonRetryable(err.message, PERMANENT_FAILURES.invalidRequest);
          throw err;
        }
      });
    },
  };
}
