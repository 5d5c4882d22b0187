import { randomBytes } from "node:crypto";
import * as path from "node:path";
import { Client, Connection } from "@temporalio/client";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openCatalog, type OpenCatalog } from "../db/client.js";
import { repositories } from "../db/schema.js";
import { SecretBox } from "../engine/secret-box.js";
import { PASSWORD, tempDir } from "../test/helpers.js";
import { seedCatalog } from "../test/catalog-template.js";
import { inProcessWorkers, testPolicy } from "../test/policy-fixtures.js";
import { startMinio } from "../test/servers.js";
import { createApp } from "./app.js";

// Nothing listens on port 1: the worker requests (registering, listing) run in this process, without Temporal.
const ADMIN = "test-admin-token";
const scratch = tempDir("cairn-api-credentials-");
const minio = await startMinio();
let catalog: OpenCatalog;
let connection: Connection;
let app: ReturnType<typeof createApp>;
let secretBox: SecretBox;
// The API must use the credentials it stores, not ones lying around in its environment.
const ambient = Object.entries(process.env).filter(([name]) => name.startsWith("AWS_"));

beforeAll(async () => {
  for (const [name] of ambient) delete process.env[name];
  await seedCatalog(scratch.dir);
  catalog = await openCatalog({ dataDir: scratch.dir });
  connection = Connection.lazy({ address: "127.0.0.1:1" });
  secretBox = new SecretBox(SecretBox.generateKey());
  const policy = testPolicy(scratch.dir, path.join(scratch.dir, "data"));
  app = createApp({ catalog: catalog.db, temporal: new Client({ connection }), secretBox, adminToken: ADMIN, policy, workers: inProcessWorkers(secretBox, policy) });
});
afterAll(async () => {
  for (const [name, value] of ambient) process.env[name] = value;
  await connection?.close();
  await catalog?.close();
  await minio.stop();
  scratch.cleanup();
});

function call(method: string, url: string, body?: unknown) {
  return app.request(url, { method, headers: { Authorization: `Bearer ${ADMIN}`, ...(body === undefined ? {} : { "Content-Type": "application/json" }) }, body: body === undefined ? undefined : JSON.stringify(body) });
}

const bucketUrl = () => `s3:${minio.endpoint}/cairn-${randomBytes(6).toString("hex")}/repo`;

describe("repository credentials", () => {
  it("opens an s3: repository with the credentials given, stores them sealed, and returns only their names", async () => {
    const url = bucketUrl();
    const credentials = { AWS_ACCESS_KEY_ID: minio.accessKeyId, AWS_SECRET_ACCESS_KEY: minio.secretAccessKey };
    const res = await call("POST", "/v1/repositories", { name: "minio", url, password: PASSWORD, credentials });
    expect(res.status, await res.clone().text()).toBe(201);
    const { id, created } = (await res.json()) as { id: string; created: boolean };
    expect(created).toBe(true);

    const [row] = await catalog.db.select().from(repositories).where(eq(repositories.id, id));
    expect(row.sealedCredentials).toBeTruthy();
    expect(JSON.stringify(row)).not.toContain(minio.secretAccessKey);
    expect(JSON.stringify(row)).not.toContain(minio.accessKeyId);
    expect(JSON.parse(secretBox.open(row.sealedCredentials!))).toEqual(credentials);

    for (const path of ["/v1/repositories", `/v1/repositories/${id}`]) {
      const text = await (await call("GET", path)).text();
      expect(text).not.toContain(minio.secretAccessKey);
      expect(text).not.toContain(row.sealedCredentials);
      expect(JSON.parse(text)).toMatchObject(path.endsWith(id) ? { id, credentials: ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] } : { repositories: [{ id, credentials: ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] }] });
    }
    // Reading snapshots opens the repository on a worker with the stored credentials.
    const snapshots = await call("GET", `/v1/snapshots?repositoryId=${id}`);
    expect(snapshots.status, await snapshots.clone().text()).toBe(200);
    expect(await snapshots.json()).toEqual({ snapshots: [], nextCursor: null });
  });

  it("refuses credentials the destination does not read, naming the ones it does, and stores nothing", async () => {
    const wrongKind = await call("POST", "/v1/repositories", { name: "mixed", url: bucketUrl(), password: PASSWORD, credentials: { AWS_ACCESS_KEY_ID: "x", AZURE_STORAGE_KEY: "secret-azure-key" } });
    expect(wrongKind.status).toBe(400);
    const body = (await wrongKind.json()) as { errors: { path: string; message: string }[] };
    expect(body.errors).toEqual([{ in: "body", path: "credentials.AZURE_STORAGE_KEY", message: expect.stringContaining("AWS_SECRET_ACCESS_KEY") }]);
    expect(JSON.stringify(body)).not.toContain("secret-azure-key");

    const local = await call("POST", "/v1/repositories", { name: "local", url: `${scratch.dir}/local`, password: PASSWORD, credentials: { AWS_ACCESS_KEY_ID: "x" } });
    expect(local.status).toBe(400);
    expect(((await local.json()) as { errors: { message: string }[] }).errors[0].message).toMatch(/takes no credentials/);
    expect((await catalog.db.select().from(repositories)).map((r) => r.name)).toEqual(["minio"]);
  });

  it("uses the process's own credentials only when the registration asks for them", async () => {
    process.env.AWS_ACCESS_KEY_ID = minio.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = minio.secretAccessKey;
    try {
      const bare = await call("POST", "/v1/repositories", { name: "bare", url: bucketUrl(), password: PASSWORD });
      expect(bare.status).toBe(422);
      expect(((await bare.json()) as { detail: string }).detail).toMatch(/no credentials for this s3: repository: give AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in its credentials/);
      const ambient = await call("POST", "/v1/repositories", { name: "ambient", url: bucketUrl(), password: PASSWORD, useEnvironmentCredentials: true });
      expect(ambient.status, await ambient.clone().text()).toBe(201);
      const { id } = (await ambient.json()) as { id: string };
      expect(await (await call("GET", `/v1/repositories/${id}`)).json()).toMatchObject({ credentials: [], useEnvironmentCredentials: true });
    } finally {
      delete process.env.AWS_ACCESS_KEY_ID;
      delete process.env.AWS_SECRET_ACCESS_KEY;
    }
    const keyFile = await call("POST", "/v1/repositories", { name: "keyfile", url: "sftp:backup@127.0.0.1:22/srv/repo", password: PASSWORD, credentials: { CAIRN_SFTP_KEY_FILE: "/root/.ssh/id_ed25519" } });
    expect(keyFile.status).toBe(400);
    expect(((await keyFile.json()) as { errors: { path: string; message: string }[] }).errors).toEqual([
      { in: "body", path: "credentials.CAIRN_SFTP_KEY_FILE", message: expect.stringMatching(/names a file on the workers.*CAIRN_SFTP_KEY/) },
    ]);
  });

  it("reports wrong credentials as a 422 naming the variable to check", async () => {
    const res = await call("POST", "/v1/repositories", { name: "wrong", url: bucketUrl(), password: PASSWORD, credentials: { AWS_ACCESS_KEY_ID: minio.accessKeyId, AWS_SECRET_ACCESS_KEY: "not-the-secret" } });
    expect(res.status).toBe(422);
    const text = await res.text();
    expect(text).toContain("AWS_SECRET_ACCESS_KEY");
    expect(text).toContain("credentials");
    expect(text).not.toContain("not-the-secret");
  });
});
