import { randomBytes } from "node:crypto";
import { readdirSync, rmSync } from "node:fs";
import * as path from "node:path";
import { DeleteObjectCommand, GetObjectLockConfigurationCommand, HeadObjectCommand, ListObjectVersionsCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startApiServer, type ApiServer } from "../api/server.js";
import { apiClient } from "./api-client.js";
import { cairn, tempDir } from "./helpers.js";
import { testPolicy } from "./policy-fixtures.js";
import { startMinio } from "./servers.js";

interface Verification {
  ok: boolean;
  events: number;
  firstBrokenSeq?: number;
  reason?: string;
  checkpoints: number;
}

const ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres";
const DAY_MS = 24 * 60 * 60 * 1000;
const minio = await startMinio();

/**
 * Signed audit checkpoints copied to a checkpoint repository on S3 with Object
 * Lock (MinIO), against a catalog on the real PostgreSQL: whoever controls the
 * catalog database and the API's disk cuts the tail of the log and removes the
 * local checkpoints; verification still names the break from the repository's
 * copies, which Object Lock keeps from being deleted or replaced.
 */
describe("audit checkpoints in a write-once repository", () => {
  const tmp = tempDir("cairn-audit-repo-");
  const dataDir = path.join(tmp.dir, "data");
  const dbName = `cairn_auditrepo_${randomBytes(6).toString("hex")}`;
  const databaseUrl = `postgres://postgres@127.0.0.1:5432/${dbName}`;
  const bucket = `cairn-audit-${randomBytes(6).toString("hex")}`;
  const repositoryUrl = `s3:${minio.endpoint}/${bucket}/audit`;
  const s3env = { AWS_ACCESS_KEY_ID: minio.accessKeyId, AWS_SECRET_ACCESS_KEY: minio.secretAccessKey, AWS_REGION: "us-east-1" };
  // MinIO's root user: it may delete anything Object Lock allows.
  const s3 = new S3Client({ region: "us-east-1", endpoint: minio.endpoint, forcePathStyle: true, credentials: { accessKeyId: minio.accessKeyId, secretAccessKey: minio.secretAccessKey } });
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => undefined });
  let db: postgres.Sql;
  let api: ApiServer | undefined;
  let client: ReturnType<typeof apiClient>;

  const start = async () => {
    api = await startApiServer({
      policy: testPolicy(tmp.dir, dataDir),
      port: 0,
      dataDir,
      databaseUrl,
      temporalAddress: "127.0.0.1:1",
      adminToken: "audit-admin-token",
      audit: { checkpointEvery: 5 },
      auditRepository: repositoryUrl,
      auditRepositoryEnv: { ...s3env, CAIRN_AUDIT_OBJECT_LOCK_DAYS: "1" },
    });
    client = apiClient(api, "audit-admin-token");
  };
  const verifyCli = async (env: Record<string, string | undefined>) => {
    const r = await cairn(["audit", "verify", "--json", "--data-dir", dataDir], { env: { DATABASE_URL: databaseUrl, CAIRN_AUDIT_REPOSITORY: undefined, ...env } });
    return { code: r.code, result: JSON.parse(r.stdout) as Verification, stderr: r.stderr };
  };
  const checkpointVersions = async () => (await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: "audit/audit-checkpoints/" }))).Versions ?? [];

  beforeAll(async () => {
    await admin.unsafe(`create database ${dbName}`);
    db = postgres(databaseUrl, { max: 1, onnotice: () => undefined });
    await start();
  });

  afterAll(async () => {
    await api?.close();
    await db?.end();
    await admin.unsafe(`drop database if exists ${dbName} with (force)`);
    await admin.end();
    s3.destroy();
    await minio.stop();
    tmp.cleanup();
  });

  it("writes every checkpoint and the signing key to the repository, under COMPLIANCE retention that refuses a delete", async () => {
    for (let i = 0; i < 12; i++) await client.ok("POST", "/v1/tokens", { name: `filler-${i}`, role: "viewer" });
    const intact = await client.ok<Verification>("POST", "/v1/audit/verify");
    expect(intact.ok).toBe(true);
    await api!.close(); // signs the head
    api = undefined;

    const lock = await s3.send(new GetObjectLockConfigurationCommand({ Bucket: bucket }));
    expect(lock.ObjectLockConfiguration?.ObjectLockEnabled).toBe("Enabled");
    const local = readdirSync(path.join(dataDir, "audit", "checkpoints")).sort();
    const versions = await checkpointVersions();
    expect(versions.map((v) => path.basename(v.Key!)).sort()).toEqual(local);
    expect(local.length).toBeGreaterThanOrEqual(5);
    const keys = (await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: "audit/audit-keys/" }))).Versions ?? [];
    expect(keys.map((k) => path.basename(k.Key!))).toEqual(readdirSync(path.join(dataDir, "audit", "keys")));
    for (const v of [...versions, ...keys]) {
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: v.Key, VersionId: v.VersionId }));
      expect(head.ObjectLockMode, v.Key).toBe("COMPLIANCE");
      expect(head.ObjectLockRetainUntilDate!.getTime(), v.Key).toBeGreaterThan(Date.now() + DAY_MS / 2);
    }

    // The newest checkpoint: deleting its version is refused, even for the root user.
    const newest = versions.sort((a, b) => (a.Key! < b.Key! ? 1 : -1))[0];
    const refused = await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: newest.Key, VersionId: newest.VersionId })).catch((e: Error) => e);
    expect(refused).toBeInstanceOf(Error);
    expect((refused as Error).name).toMatch(/AccessDenied|ObjectLocked|InvalidRequest/);
    // What a delete without a version id or an overwrite can do: hide it behind a delete marker or a forged version.
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: newest.Key, Body: '{"seq":1,"hash":"forged"}' }));
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: newest.Key }));
    expect((await checkpointVersions()).filter((v) => v.Key === newest.Key).map((v) => v.VersionId)).toContain(newest.VersionId);

    const cli = await verifyCli({ ...s3env, CAIRN_AUDIT_REPOSITORY: repositoryUrl });
    expect(cli.result, cli.stderr).toMatchObject({ ok: true, checkpoints: local.length });
  });

  it("names the break from the repository's copies when the table's tail is cut and the local checkpoints are gone", async () => {
    const total = (await db`select count(*)::int as n from audit_events`)[0].n as number;
    expect(total).toBeGreaterThan(20);
    // Whoever controls the database and the API's disk.
    await db.unsafe("alter table audit_events disable trigger user");
    await db`delete from audit_events where seq > 15`;
    rmSync(path.join(dataDir, "audit", "checkpoints"), { recursive: true, force: true });

    // Without the repository nothing is left to compare with: the cut log looks whole.
    const blind = await verifyCli({});
    expect(blind.result).toMatchObject({ ok: true, events: 15, checkpoints: 0 });

    const cli = await verifyCli({ ...s3env, CAIRN_AUDIT_REPOSITORY: repositoryUrl });
    expect(cli.code).toBe(1);
    expect(cli.result).toMatchObject({ ok: false, events: 15, firstBrokenSeq: 16 });
    expect(cli.result.reason).toContain(`(in ${repositoryUrl})`);
    expect(cli.result.reason).toMatch(/events from 16 on were removed/);

    // The API says so as it starts, from the repository, and its verify route agrees.
    const logged = vi.spyOn(console, "error").mockImplementation(() => undefined);
    try {
      await start();
      expect(logged).toHaveBeenCalledWith(expect.stringMatching(new RegExp(`the audit log has no event \\d+, which the checkpoint signed at .* \\(in ${repositoryUrl.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}\\) vouches for`)));
    } finally {
      logged.mockRestore();
    }
    expect(await client.ok<Verification>("POST", "/v1/audit/verify")).toMatchObject({ ok: false, firstBrokenSeq: 16 });
    // The local checkpoints the API writes again are copied to the repository too; the old ones stay there.
    await api!.close();
    api = undefined;
    expect((await checkpointVersions()).length).toBeGreaterThan(total / 5);
  });

  it("fails verification when the repository cannot be read, rather than passing without it", async () => {
    await minio.stop();
    const cli = await verifyCli({ ...s3env, CAIRN_AUDIT_REPOSITORY: repositoryUrl });
    expect(cli.code).toBe(1);
    expect(cli.result.ok).toBe(false);
    expect(cli.result.reason).toMatch(new RegExp(`cannot read the checkpoints in ${repositoryUrl.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}`));
  });
});
