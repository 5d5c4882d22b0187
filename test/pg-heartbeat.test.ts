import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConnectionUrl } from "../sources/postgres/connection.js";
import { HEARTBEAT_TABLE, readHeartbeat, writeHeartbeat } from "../sources/postgres/heartbeat.js";
import { asPostgres, clusterAt, initCluster, PG_BIN, pgTempDir, waitFor, type PgCluster } from "./postgres.js";

/**
 * The RPO heartbeat: written on a primary, read back there and on a streaming
 * standby (read-only), which sees the same row once it has replayed it.
 */
describe("PostgreSQL heartbeat", () => {
  const tmp = pgTempDir();
  let primary: PgCluster;
  let standby: PgCluster;

  beforeAll(async () => {
    primary = await initCluster(tmp.dir);
    const dir = path.join(tmp.dir, "standby");
    const r = await asPostgres(path.join(PG_BIN, "pg_basebackup"), ["-d", primary.url, "-D", dir, "-R", "-X", "stream", "--no-sync"]);
    if (r.code !== 0) throw new Error(`pg_basebackup failed: ${r.stderr}`);
    standby = await clusterAt(dir);
    await standby.start();
  }, 180_000);

  afterAll(async () => {
    await standby?.destroy();
    await primary?.destroy();
    tmp.cleanup();
  });

  it("is absent until written, then counts up from 1 with the primary's clock", async () => {
    const conn = parseConnectionUrl(primary.url);
    expect(await readHeartbeat(conn)).toBeUndefined();
    const first = await writeHeartbeat(conn);
    expect(first.seq).toBe(1n);
    const second = await writeHeartbeat(conn);
    expect(second.seq).toBe(2n);
    expect(second.at.getTime()).toBeGreaterThanOrEqual(first.at.getTime());
    expect(await readHeartbeat(conn)).toEqual(second);
    // The time is the server's now(), to the millisecond.
    const serverMs = Number(await primary.sql(`SELECT floor(extract(epoch FROM at) * 1000)::bigint FROM public.${HEARTBEAT_TABLE}`));
    expect(second.at.getTime()).toBe(serverMs);
    expect(await primary.sql(`SELECT count(*) FROM public.${HEARTBEAT_TABLE}`)).toBe("1");
  });

  it("is read on a read-only standby once replayed, and cannot be written there", async () => {
    const conn = parseConnectionUrl(standby.url);
    expect(await standby.sql("SELECT pg_is_in_recovery()")).toBe("t");
    const written = await writeHeartbeat(parseConnectionUrl(primary.url));
    await waitFor("the standby to replay the heartbeat", async () => (await readHeartbeat(conn))?.seq === written.seq);
    expect(await readHeartbeat(conn)).toEqual(written);
    await expect(writeHeartbeat(conn)).rejects.toThrow(/standby \(read-only\); write it on the primary/);
  });
});
