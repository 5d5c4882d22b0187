import { spawn, spawnSync } from "node:child_process";
import { promises as fs, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { Server, utils } from "ssh2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Backend } from "../backends/backend.js";
import { runBackendConformance } from "../backends/conformance.js";
import { SftpBackend, type SftpOptions } from "../backends/sftp.js";
import { expectCliRoundTrip } from "./cli-roundtrip.js";
import { ROOT } from "./helpers.js";
import { startSshd, type Sshd } from "./servers.js";

let sshd: Sshd;
beforeAll(async () => {
  sshd = await startSshd();
});
afterAll(async () => {
  await sshd?.stop();
});

const options = (overrides: Partial<SftpOptions> = {}): SftpOptions => ({
  host: "127.0.0.1",
  port: sshd.port,
  username: sshd.username,
  path: mkdtempSync(path.join(sshd.dataDir, "repo-")),
  privateKey: sshd.clientKey,
  knownHostsFile: sshd.knownHostsFile,
  ...overrides,
});

/** Puts KEY (BYTES bytes, in 1 MiB parts) over SFTP from a separate process. */
const WRITER = `
import { SftpBackend } from ${JSON.stringify(path.join(ROOT, "backends", "sftp.ts"))};
import { deterministicPart } from ${JSON.stringify(path.join(ROOT, "backends", "conformance.ts"))};
const { OPTIONS, KEY, BYTES } = process.env;
const parts = Array.from({ length: Number(BYTES) / 1048576 }, (_, i) => deterministicPart("killed", i, 1048576));
await new SftpBackend(JSON.parse(OPTIONS)).put(KEY, parts);
`;

const roots = new Map<Backend, SftpOptions>();

runBackendConformance(
  "sftp",
  async () => {
    const opts = options();
    const backend = new SftpBackend(opts);
    roots.set(backend, opts);
    return {
      backend,
      cleanup: async () => {
        await backend.close();
        rmSync(opts.path, { recursive: true, force: true });
      },
    };
  },
  {
    killableWriter: {
      spawn: (backend, key, bytes) =>
        spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", WRITER], {
          env: { ...process.env, OPTIONS: JSON.stringify(roots.get(backend)), KEY: key, BYTES: String(bytes) },
          stdio: "ignore",
        }),
      // The server side of the repository is a local directory: look for the upload's temporary file.
      writing: async (backend) => {
        const dir = path.join(roots.get(backend)!.path, "killed");
        const names = await fs.readdir(dir).catch(() => [] as string[]);
        for (const name of names.filter((n) => n.startsWith(".tmp-"))) {
          if ((await fs.stat(path.join(dir, name)).catch(() => undefined))?.size) return true;
        }
        return false;
      },
    },
  },
);

describe("sftp connections", () => {
  it("refuse a server whose host key is not in known_hosts, and say how to add it", async () => {
    const empty = path.join(sshd.dir, "empty_known_hosts");
    writeFileSync(empty, "");
    const backend = new SftpBackend(options({ knownHostsFile: empty }));
    const err = await backend.exists("config").catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: "permanent" });
    expect((err as Error).message).toContain(`the SSH host key of [127.0.0.1]:${sshd.port} (ssh-ed25519 SHA256:`);
    expect((err as Error).message).toContain(`ssh-keyscan -p ${sshd.port} 127.0.0.1 >> ${empty}`);
    await backend.close();
  });

  it("refuse a server whose host key changed", async () => {
    const other = path.join(sshd.dir, "other_known_hosts");
    writeFileSync(other, `[127.0.0.1]:${sshd.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBD4sIFVEZ4YHwSz4o6P3NB1WhOTXhOHVJQ/2cLr1wX2\n`);
    const backend = new SftpBackend(options({ knownHostsFile: other }));
    const err = await backend.put("k", Buffer.from("never written")).catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: "permanent" });
    expect((err as Error).message).toMatch(/host key of \[127\.0\.0\.1\]:\d+ has changed/);
    await backend.close();
  });

  it("report a refused key as a permanent credentials problem", async () => {
    const file = path.join(sshd.dir, "stranger_key");
    expect(spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", file]).status).toBe(0);
    const backend = new SftpBackend(options({ privateKey: readFileSync(file) }));
    const err = await backend.exists("config").catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: "permanent" });
    expect((err as Error).message).toContain("refused");
    await backend.close();
  });

  it("authenticate with a password (against an in-process SSH server: the system sshd would need a system account)", async () => {
    const server = new Server({ hostKeys: [readFileSync(path.join(sshd.dir, "host_key"))] }, (client) => {
      client.on("authentication", (ctx) => (ctx.method === "password" && ctx.username === "backup" && ctx.password === "s3cret" ? ctx.accept() : ctx.reject(["password"])));
      client.on("error", () => undefined);
      client.on("session", (accept) =>
        accept().on("sftp", (acceptSftp) => {
          const sftp = acceptSftp();
          sftp.on("STAT", (reqid) => sftp.status(reqid, utils.sftp.STATUS_CODE.NO_SUCH_FILE));
        }),
      );
    });
    const port = await new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port)));
    try {
      const knownHostsFile = path.join(sshd.dir, "password_known_hosts");
      writeFileSync(knownHostsFile, readFileSync(sshd.knownHostsFile, "utf8").replace(`:${sshd.port} `, `:${port} `));
      const login = (password: string) => new SftpBackend({ host: "127.0.0.1", port, username: "backup", password, path: "repo", knownHostsFile });
      const right = login("s3cret");
      expect(await right.exists("config")).toBe(false);
      await right.close();
      const wrong = login("guess");
      const err = await wrong.exists("config").catch((e: unknown) => e);
      expect(err).toMatchObject({ kind: "permanent" });
      expect((err as Error).message).toContain("the server refused backup's credentials");
      await wrong.close();
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("carry cairn init, backup, restore and check --read-data (CLI, sftp: URL, key from CAIRN_SFTP_KEY_FILE)", async () => {
    const dir = path.join(sshd.dataDir, "cli-repo");
    await expectCliRoundTrip(`sftp:${sshd.username}@127.0.0.1:${sshd.port}${dir}`, {
      CAIRN_SFTP_KEY_FILE: sshd.clientKeyFile,
      CAIRN_SFTP_KNOWN_HOSTS: sshd.knownHostsFile,
    });
  });

  it("connect again after the connection drops", async () => {
    const backend = new SftpBackend(options());
    await backend.put("a/b", Buffer.from("before"));
    await backend.close();
    expect((await backend.get("a/b")).toString()).toBe("before");
    await backend.close();
  });
});
