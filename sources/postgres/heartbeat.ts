import { CairnError } from "../../engine/errors.js";
import { connectionEnv, type PgConnection } from "./connection.js";
import { query } from "./tools.js";

/**
 * The table a heartbeat lives in: one row (id = 1) on the primary, replayed like
 * any other row on its standbys, so comparing the primary's row with a standby's
 * says how far behind (in time and in writes) the standby is: the data a
 * failover at that moment would lose.
 */
export const HEARTBEAT_TABLE = "cairn_heartbeat";

/** One heartbeat: when it was written (the primary's clock) and its sequence number (1, 2, ...). */
export interface Heartbeat {
  at: Date;
  seq: bigint;
}

const TABLE = `public.${HEARTBEAT_TABLE}`;
/** Milliseconds since the epoch: exact in a Date, and free of the session's DateStyle and time zone. */
const COLUMNS = "seq, floor(extract(epoch FROM at) * 1000)::bigint";

/**
 * Writes the next heartbeat on a primary: creates the table if it is missing,
 * then sets row 1 to (now(), seq + 1) in one transaction. Idempotent in effect:
 * each call moves the heartbeat forward by one. Fails on a server in recovery
 * (a standby cannot be written).
 */
export async function writeHeartbeat(conn: PgConnection): Promise<Heartbeat> {
  const sql =
    `CREATE TABLE IF NOT EXISTS ${TABLE} (id int PRIMARY KEY, at timestamptz NOT NULL, seq bigint NOT NULL); ` +
    `INSERT INTO ${TABLE} AS h (id, at, seq) VALUES (1, now(), 1) ON CONFLICT (id) DO UPDATE SET at = now(), seq = h.seq + 1 RETURNING ${COLUMNS}`;
  const rows = await query(conn.url, sql, connectionEnv(conn.password)).catch((err: Error) => {
    if (/read-only transaction|recovery is in progress/.test(err.message)) {
      throw new CairnError(`cannot write the heartbeat on ${conn.host}:${conn.port}: the server is a standby (read-only); write it on the primary`);
    }
    throw err;
  });
  return toHeartbeat(rows[0]);
}

/**
 * Reads the last heartbeat; undefined when none was ever written (no table, or
 * no row yet). Only reads, so it works on a standby as on the primary.
 */
export async function readHeartbeat(conn: PgConnection): Promise<Heartbeat | undefined> {
  const env = connectionEnv(conn.password);
  const [[exists]] = await query(conn.url, `SELECT to_regclass('${TABLE}') IS NOT NULL`, env);
  if (exists !== "t") return undefined;
  const rows = await query(conn.url, `SELECT ${COLUMNS} FROM ${TABLE} WHERE id = 1`, env);
  return rows.length ? toHeartbeat(rows[0]) : undefined;
}

function toHeartbeat(row: string[] | undefined): Heartbeat {
  if (!row || row.length !== 2) throw new CairnError(`the ${HEARTBEAT_TABLE} row could not be read (got ${JSON.stringify(row)}); check that nothing else changed the table's columns`);
  return { seq: BigInt(row[0]), at: new Date(Number(row[1])) };
}
