import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { BackendError } from "./backend.js";
import { RetryBackend } from "./retry.js";
import { openBackend, parseRepositoryUrl } from "./url.js";

describe("parseRepositoryUrl", () => {
  it("reads local paths, with or without local:", () => {
    expect(parseRepositoryUrl("/srv/backups")).toEqual({ type: "local", path: "/srv/backups" });
    expect(parseRepositoryUrl("relative/repo")).toEqual({ type: "local", path: "relative/repo" });
    expect(parseRepositoryUrl("local:/srv/backups")).toEqual({ type: "local", path: "/srv/backups" });
    expect(parseRepositoryUrl("C:\\backups")).toEqual({ type: "local", path: "C:\\backups" });
  });

  it("reads S3 locations with an explicit endpoint, a bare host, or AWS", () => {
    expect(parseRepositoryUrl("s3:https://minio.lan:9000/backups/host1/repo")).toEqual({ type: "s3", endpoint: "https://minio.lan:9000", bucket: "backups", prefix: "host1/repo" });
    expect(parseRepositoryUrl("s3:http://127.0.0.1:9000/b")).toEqual({ type: "s3", endpoint: "http://127.0.0.1:9000", bucket: "b", prefix: "" });
    expect(parseRepositoryUrl("s3:s3.eu-west-1.amazonaws.com/bucket/repo")).toEqual({ type: "s3", endpoint: undefined, bucket: "bucket", prefix: "repo" });
    expect(parseRepositoryUrl("s3:objects.example.org/bucket")).toEqual({ type: "s3", endpoint: "https://objects.example.org", bucket: "bucket", prefix: "" });
  });

  it("reads SFTP locations with and without user, port, absolute or home-relative paths", () => {
    expect(parseRepositoryUrl("sftp:backup@nas.lan:2222/srv/repo")).toEqual({ type: "sftp", user: "backup", host: "nas.lan", port: 2222, path: "/srv/repo" });
    expect(parseRepositoryUrl("sftp:backup@nas.lan:/srv/repo")).toEqual({ type: "sftp", user: "backup", host: "nas.lan", port: 22, path: "/srv/repo" });
    expect(parseRepositoryUrl("sftp:nas.lan:repo")).toEqual({ type: "sftp", user: undefined, host: "nas.lan", port: 22, path: "repo" });
    expect(parseRepositoryUrl("sftp:backup@nas.lan:2222/~/repo")).toEqual({ type: "sftp", user: "backup", host: "nas.lan", port: 2222, path: "repo" });
    expect(parseRepositoryUrl("sftp://backup@nas.lan:2200/srv/repo")).toEqual({ type: "sftp", user: "backup", host: "nas.lan", port: 2200, path: "/srv/repo" });
  });

  it("reads Azure and GCS locations, also in restic's container:/path form", () => {
    expect(parseRepositoryUrl("azure:backups/host1")).toEqual({ type: "azure", container: "backups", prefix: "host1" });
    expect(parseRepositoryUrl("azure:backups:/host1/")).toEqual({ type: "azure", container: "backups", prefix: "host1" });
    expect(parseRepositoryUrl("gs:bucket/a/b")).toEqual({ type: "gs", bucket: "bucket", prefix: "a/b" });
    expect(parseRepositoryUrl("gs:bucket")).toEqual({ type: "gs", bucket: "bucket", prefix: "" });
  });

  it("refuses what it cannot read, saying which forms work", () => {
    for (const bad of ["s3:https://minio.lan:9000/", "s3:hostonly", "sftp:backup@nas.lan:2222", "sftp:nas.lan", "ftp:host/dir", "azure:", "local:"]) {
      const err = (() => {
        try {
          parseRepositoryUrl(bad);
        } catch (e) {
          return e;
        }
      })();
      expect(err, bad).toBeInstanceOf(BackendError);
      expect((err as Error).message, bad).toContain("use a path, local:/path, s3:");
    }
  });
});

describe("openBackend", () => {
  it("wraps every destination in retries and takes credentials from the environment", async () => {
    const local = await openBackend("/tmp/some-repo", {});
    expect(local).toBeInstanceOf(RetryBackend);
    expect(local.location).toBe("/tmp/some-repo");
    expect((await openBackend("s3:http://127.0.0.1:9000/b/p", { AWS_ACCESS_KEY_ID: "a", AWS_SECRET_ACCESS_KEY: "s" })).location).toBe("s3:http://127.0.0.1:9000/b/p");
    expect((await openBackend("azure:c/p", { AZURE_STORAGE_ACCOUNT: "acct", AZURE_STORAGE_KEY: Buffer.from("k").toString("base64") })).location).toBe("azure:c/p");
    expect((await openBackend("gs:b/p", {})).location).toBe("gs:b/p");
  });

  it("names the variables to set when credentials are missing", async () => {
    await expect(openBackend("azure:c/p", {})).rejects.toThrow(/set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY/);
    const home = mkdtempSync(path.join(tmpdir(), "cairn-home-"));
    try {
      await expect(openBackend("sftp:backup@nas.lan:/srv/repo", { HOME: home })).rejects.toThrow(/set CAIRN_SFTP_KEY_FILE to a private key file or CAIRN_SFTP_PASSWORD/);
      await expect(openBackend("sftp:backup@nas.lan:/srv/repo", { HOME: home, CAIRN_SFTP_KEY_FILE: path.join(home, "nope") })).rejects.toThrow(/cannot read the SSH key/);
      writeFileSync(path.join(home, "key"), "not used before connecting");
      const sftp = await openBackend("sftp:backup@nas.lan:2222/srv/repo", { HOME: home, CAIRN_SFTP_KEY_FILE: path.join(home, "key") });
      expect(sftp.location).toBe("sftp:backup@nas.lan:2222/srv/repo");
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  it("uses no credential the process finds on its own when told not to", async () => {
    const home = mkdtempSync(path.join(tmpdir(), "cairn-home-"));
    try {
      mkdirSync(path.join(home, ".ssh"));
      writeFileSync(path.join(home, ".ssh", "id_ed25519"), "the worker's own key");
      expect((await openBackend("sftp:backup@nas.lan:/srv/repo", { HOME: home })).location).toBe("sftp:backup@nas.lan:22/srv/repo");
      await expect(openBackend("sftp:backup@nas.lan:/srv/repo", { HOME: home }, { ambientCredentials: false })).rejects.toThrow(/set CAIRN_SFTP_KEY \(the private key itself\) or CAIRN_SFTP_PASSWORD/);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
    // Without keys the SDKs would look in ~/.aws, the instance role or Application Default Credentials.
    await expect(openBackend("s3:http://127.0.0.1:9000/b/p", {}, { ambientCredentials: false })).rejects.toThrow(/no credentials for this s3: repository: give AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/);
    await expect(openBackend("gs:b/p", {}, { ambientCredentials: false })).rejects.toThrow(/give CAIRN_GCS_KEY/);
    expect((await openBackend("gs:b/p", { CAIRN_GCS_ENDPOINT: "http://127.0.0.1:4443" }, { ambientCredentials: false })).location).toBe("gs:b/p");
  });
});
