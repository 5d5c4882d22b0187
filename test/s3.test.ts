import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectContainerCreatedOnDemand, runBackendConformance } from "../backends/conformance.js";
import { S3Backend, type S3Options } from "../backends/s3.js";
import { expectCliRoundTrip } from "./cli-roundtrip.js";
import { startMinio } from "./servers.js";

const minio = await startMinio();

describe("s3 against MinIO", () => {
  afterAll(async () => {
    await minio.stop();
  });
  const options = (overrides: Partial<S3Options> = {}): S3Options => ({
    endpoint: minio.endpoint,
    forcePathStyle: true,
    accessKeyId: minio.accessKeyId,
    secretAccessKey: minio.secretAccessKey,
    bucket: `cairn-${randomBytes(6).toString("hex")}`,
    prefix: "repo/one",
    ...overrides,
  });

  runBackendConformance("s3", async () => {
    const backend = new S3Backend(options());
    await backend.ensureContainer();
    return { backend, cleanup: () => backend.close() };
  });

  it("creates a missing bucket on ensureContainer; before that it reads as empty and refuses writes with what to do", async () => {
    const backend = new S3Backend(options({ prefix: "" }));
    await expectContainerCreatedOnDemand(backend, "bucket");
    await backend.close();
  });

  it("stores objects with the configured storage class", async () => {
    const backend = new S3Backend(options({ storageClass: "REDUCED_REDUNDANCY" }));
    await backend.ensureContainer();
    await backend.put("k", Buffer.from("x"));
    const { HeadObjectCommand, S3Client } = await import("@aws-sdk/client-s3");
    const client = new S3Client({ region: "us-east-1", endpoint: minio.endpoint, forcePathStyle: true, credentials: { accessKeyId: minio.accessKeyId, secretAccessKey: minio.secretAccessKey } });
    const head = await client.send(new HeadObjectCommand({ Bucket: (backend as unknown as { bucket: string }).bucket, Key: "repo/one/k" }));
    expect(head.StorageClass).toBe("REDUCED_REDUNDANCY");
    client.destroy();
    await backend.close();
  });

  it("reports wrong credentials as permanent, naming the variables to check", async () => {
    const backend = new S3Backend(options({ secretAccessKey: "wrong-secret-key" }));
    const err = await backend.stat("config").catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: "permanent" });
    expect((err as Error).message).toContain("AWS_SECRET_ACCESS_KEY");
    await backend.close();
  });

  it("carries cairn init (creating the bucket), backup, restore and check --read-data (CLI, s3: URL)", async () => {
    await expectCliRoundTrip(`s3:${minio.endpoint}/cairn-${randomBytes(6).toString("hex")}/backups/host1`, {
      AWS_ACCESS_KEY_ID: minio.accessKeyId,
      AWS_SECRET_ACCESS_KEY: minio.secretAccessKey,
      AWS_REGION: "us-east-1",
    });
  });
});
