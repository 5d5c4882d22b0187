import type { Command } from "commander";
import * as backup from "./cmd_pg_backup.js";
import * as expire from "./cmd_pg_expire.js";
import * as logical from "./cmd_pg_logical.js";
import * as receive from "./cmd_pg_receive.js";
import * as recovery from "./cmd_pg_recovery.js";
import * as wal from "./cmd_pg_wal.js";

/** `cairn pg ...`: PostgreSQL WAL archiving, base backups, point-in-time recovery and logical dumps. */
export function register(program: Command): void {
  const pg = program
    .command("pg")
    .description("PostgreSQL: WAL archiving, base backups, point-in-time recovery, logical dumps");
  for (const verbs of [wal, receive, backup, recovery, expire, logical]) verbs.register(pg);
}
