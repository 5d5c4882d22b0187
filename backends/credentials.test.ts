import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSshd, type Sshd } from "../test/servers.js";
import { credentialProblems, openBackendWith } from "./credentials.js";

describe("credentialProblems", () => {
  it("accepts each destination's own variables and names the right ones for any other", () => {
    expect(credentialProblems("s3:https://minio:9000/b/p", { AWS_ACCESS_KEY_ID: "a", AWS_SECRET_ACCESS_KEY: "s", AWS_REGION: "eu-west-3" })).toEqual([]);
    expect(credentialProblems("azure:c/p", { AZURE_STORAGE_ACCOUNT: "a", AZURE_STORAGE_KEY: "k" })).toEqual([]);
    expect(credentialProblems("gs:b/p", { CAIRN_GCS_KEY: "{}" })).toEqual([]);
    // A key file names the worker's own file: only for repositories allowed the worker's environment credentials.
    expect(credentialProblems("gs:b/p", { GOOGLE_APPLICATION_CREDENTIALS: "/etc/cairn/gcs.json" }, true)).toEqual([]);
    expect(credentialProblems("gs:b/p", { GOOGLE_APPLICATION_CREDENTIALS: "/etc/cairn/gcs.json" })[0].message).toMatch(/names a file on the workers.*CAIRN_GCS_KEY/);
    expect(credentialProblems("sftp:u@h:/p", { CAIRN_SFTP_KEY_FILE: "/root/.ssh/id_rsa" })[0].message).toMatch(/CAIRN_SFTP_KEY\b/);
    expect(credentialProblems("sftp:u@h:/p", { CAIRN_SFTP_KEY: "-----BEGIN", CAIRN_SFTP_KNOWN_HOSTS: "/k" })).toEqual([]);

    const [wrong] = credentialProblems("gs:b/p", { AWS_SECRET_ACCESS_KEY: "s" });
    expect(wrong.variable).toBe("AWS_SECRET_ACCESS_KEY");
    expect(wrong.message).toContain("GOOGLE_APPLICATION_CREDENTIALS");
    // Other variables a backend reads (HOME, USER) are not credentials: they would change where it looks, not who it is.
    expect(credentialProblems("sftp:u@h:/p", { HOME: "/root" }).map((p) => p.variable)).toEqual(["HOME"]);
    expect(credentialProblems("/srv/repo", { AWS_ACCESS_KEY_ID: "a" })[0].message).toMatch(/takes no credentials/);
  });
});

describe("openBackendWith", () => {
  let sshd: Sshd;
  beforeAll(async () => {
    sshd = await startSshd();
  });
  afterAll(async () => {
    await sshd?.stop();
  });

  it("logs in over SFTP with the private key itself (CAIRN_SFTP_KEY) and leaves no copy of it on disk", async () => {
    const repo = mkdtempSync(path.join(sshd.dataDir, "repo-"));
    const before = readdirSync(tmpdir()).filter((n) => n.startsWith("cairn-sftp-key-"));
    // No key file in the environment and a HOME without ~/.ssh: the stored key is the only way in.
    const env = { HOME: mkdtempSync(path.join(sshd.dir, "home-")) };
    const backend = await openBackendWith(`sftp:${sshd.username}@127.0.0.1:${sshd.port}${repo}`, { CAIRN_SFTP_KEY: sshd.clientKey, CAIRN_SFTP_KNOWN_HOSTS: sshd.knownHostsFile }, env);
    try {
      await backend.put("config", Buffer.from("hello"));
      expect(readdirSync(repo)).toContain("config");
    } finally {
      await backend.close?.();
    }
    expect(readdirSync(tmpdir()).filter((n) => n.startsWith("cairn-sftp-key-"))).toEqual(before);

    await expect(openBackendWith(`sftp:${sshd.username}@127.0.0.1:${sshd.port}${repo}`, { CAIRN_SFTP_KNOWN_HOSTS: sshd.knownHostsFile }, env)).rejects.toThrow(/CAIRN_SFTP_KEY_FILE/);
  });
});
