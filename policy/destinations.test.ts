import { connect, createServer, type Server } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addressRefusal, destinationRefusal, policyLookup, POLICY_ERROR_CODE } from "./destinations.js";
import { loadPolicy } from "./policy.js";

const dataDir = "/tmp/cairn-policy-destinations/.cairn";
const policy = (env: Record<string, string> = {}) => loadPolicy({ env, dataDir });
const refusal = (url: string, env: Record<string, string> = {}, credentials: Record<string, string> = {}) => destinationRefusal(policy(env), url, credentials, { realPaths: false });

describe("destinations", () => {
  it("never allows cloud metadata or link-local addresses, whatever the policy says", async () => {
    const open = { CAIRN_ALLOW_LOOPBACK: "true", CAIRN_ALLOW_PRIVATE_NETWORKS: "true", CAIRN_DESTINATION_HOSTS: "*,169.254.0.0/16,fd00::/8" };
    for (const url of ["s3:http://169.254.169.254/bucket", "s3:http://[fd00:ec2::254]:9000/bucket", "sftp://backup@169.254.10.1:22/srv", "s3:http://[::ffff:169.254.169.254]/b", "s3:http://0.0.0.0:9000/b"]) {
      const r = await refusal(url, open);
      expect(r?.rule, url).toBe("never");
      expect(r?.message, url).toMatch(/whatever the policy says/);
    }
    expect((await refusal("s3:http://169.254.169.254/bucket"))?.message).toMatch(/cloud metadata address/);
  });

  it("refuses loopback and private addresses unless allowed, by setting or by naming the host", async () => {
    const loop = await refusal("s3:http://127.0.0.1:9000/bucket");
    expect(loop?.rule).toBe("allowLoopback");
    expect(loop?.message).toMatch(/CAIRN_ALLOW_LOOPBACK=true/);
    expect((await refusal("s3:http://localhost:9000/bucket"))?.message).toMatch(/^destination localhost \((127\.0\.0\.1|::1)\) is a loopback address/);
    expect(await refusal("s3:http://localhost:9000/bucket", { CAIRN_ALLOW_LOOPBACK: "1" })).toBeUndefined();
    expect(await refusal("s3:http://localhost:9000/bucket", { CAIRN_DESTINATION_HOSTS: "*,localhost" })).toBeUndefined();
    expect((await refusal("sftp:backup@10.1.2.3:22/srv"))?.rule).toBe("allowPrivateNetworks");
    expect((await refusal("sftp:backup@192.168.7.7:22/srv", { CAIRN_DESTINATION_HOSTS: "*,10.0.0.0/8" }))?.rule).toBe("allowPrivateNetworks");
    expect(await refusal("sftp:backup@10.1.2.3:22/srv", { CAIRN_DESTINATION_HOSTS: "*,10.0.0.0/8" })).toBeUndefined();
    expect(await refusal("sftp:backup@10.1.2.3:22/srv", { CAIRN_ALLOW_PRIVATE_NETWORKS: "true" })).toBeUndefined();
  });

  it("restricts kinds and hosts to the allowed ones", async () => {
    const kinds = await refusal("azure:backups/x", { CAIRN_DESTINATION_KINDS: "s3,local" });
    expect(kinds?.message).toBe("azure: destinations are not allowed (CAIRN_DESTINATION_KINDS=s3,local); add azure there to allow them");
    expect(await refusal("s3:http://8.8.8.8/b", { CAIRN_DESTINATION_HOSTS: "minio.example.com" })).toMatchObject({ rule: "destinationHosts" });
    expect(await refusal("s3:http://8.8.8.8/b", { CAIRN_DESTINATION_HOSTS: "8.8.0.0/16" })).toBeUndefined();
    expect(await refusal("s3:https://no-such-host.invalid/b", { CAIRN_DESTINATION_HOSTS: "minio.example.com" })).toMatchObject({ rule: "destinationHosts" });
  });

  it("finds the host in Azure connection strings and the GCS endpoint", async () => {
    expect((await refusal("azure:c/p", {}, { AZURE_STORAGE_CONNECTION_STRING: "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=k;BlobEndpoint=http://127.0.0.1:10000/a;" }))?.rule).toBe("allowLoopback");
    expect((await refusal("azure:c/p", {}, { AZURE_STORAGE_CONNECTION_STRING: "UseDevelopmentStorage=true" }))?.rule).toBe("allowLoopback");
    expect((await refusal("gs:bucket/p", {}, { CAIRN_GCS_ENDPOINT: "http://[fd00:ec2::254]:4443" }))?.rule).toBe("never");
  });

  it("judges a local repository by the repository roots", async () => {
    expect((await refusal("/etc/cron.d"))?.message).toMatch(/local repository \/etc\/cron.d is outside the allowed repository roots/);
    expect(await refusal("/srv/backups/main")).toBeUndefined();
  });

  it("names the rule that refused an address", () => {
    expect(addressRefusal(policy(), "8.8.8.8", "8.8.8.8")).toBeUndefined();
    expect(addressRefusal(policy(), "backup.example.com", "10.0.0.9")?.message).toMatch(/^destination backup\.example\.com \(10\.0\.0\.9\) is a private network address/);
  });
});

describe("policyLookup", () => {
  let server: Server;
  let port: number;
  let connections = 0;
  beforeAll(async () => {
    server = createServer((s) => {
      connections++;
      s.end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const attempt = (env: Record<string, string>) =>
    new Promise<string>((resolve) => {
      const sock = connect({ host: "localhost", port, family: 4, lookup: policyLookup(policy(env)) });
      sock.once("connect", () => {
        sock.destroy();
        resolve("connected");
      });
      sock.once("error", (err: NodeJS.ErrnoException) => resolve(`${err.code}: ${err.message}`));
    });

  it("refuses before connecting when a name resolves to a refused address, and connects when allowed", async () => {
    const refused = await attempt({});
    expect(refused).toMatch(new RegExp(`^${POLICY_ERROR_CODE}: destination localhost \\(127.0.0.1\\) is a loopback address`));
    await new Promise((r) => setTimeout(r, 100));
    expect(connections).toBe(0);
    expect(await attempt({ CAIRN_ALLOW_LOOPBACK: "true" })).toBe("connected");
  });
});
