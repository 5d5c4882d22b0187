import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, connect } from "node:net";
import { homedir, userInfo } from "node:os";
import * as path from "node:path";
import { ROOT, tempDir } from "./helpers.js";

/** A server started by a test, on loopback; stop() ends it by its pid and removes its files. */
export interface TestServer {
  port: number;
  dir: string;
  stop(): Promise<void>;
}

/** A TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts connections on the port; fails with the server's output if it exits first. */
async function waitForPort(port: number, child: ChildProcess, output: () => string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the server exited (${child.exitCode ?? child.signalCode}) before listening on ${port}:\n${output()}`);
    const open = await new Promise<boolean>((resolve) => {
      const s = connect({ host: "127.0.0.1", port }, () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port} after ${timeoutMs / 1000}s:\n${output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Spawns a server process and returns once it listens on `port`. */
async function startProcess(command: string, args: string[], port: number, dir: string, cleanup: () => void, env: NodeJS.ProcessEnv = {}): Promise<TestServer & { child: ChildProcess }> {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout!.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-8000)));
  child.stderr!.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-8000)));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid!, "SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, "SIGKILL");
    }
    cleanup();
  };
  try {
    await waitForPort(port, child, () => log);
  } catch (err) {
    await stop();
    throw err;
  }
  return { child, port, dir, stop };
}

export interface Sshd extends TestServer {
  /** The listening sshd's process id (each connection is served by a child of it). */
  pid: number;
  username: string;
  /** The client's private key (OpenSSH format), authorized for `username`. */
  clientKey: string;
  clientKeyFile: string;
  /** A known_hosts file that lists this server's key for [127.0.0.1]:port. */
  knownHostsFile: string;
  /** Where the repositories go. */
  dataDir: string;
}

/**
 * Debian's OpenSSH server on a free loopback port with its own host key, config
 * and authorized_keys, all in a temporary directory. Key authentication only.
 */
export async function startSshd(): Promise<Sshd> {
  const tmp = tempDir("cairn-sshd-");
  const dir = tmp.dir;
  const keygen = (file: string) => {
    const r = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "cairn-test", "-f", file]);
    if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
  };
  keygen(path.join(dir, "host_key"));
  keygen(path.join(dir, "client_key"));
  writeFileSync(path.join(dir, "authorized_keys"), readFileSync(path.join(dir, "client_key.pub")));
  const port = await freePort();
  const [type, key] = readFileSync(path.join(dir, "host_key.pub"), "utf8").split(" ");
  writeFileSync(path.join(dir, "known_hosts"), `[127.0.0.1]:${port} ${type} ${key}\n`);
  const config = path.join(dir, "sshd_config");
  writeFileSync(
    config,
    [
      "ListenAddress 127.0.0.1",
      `Port ${port}`,
      `HostKey ${path.join(dir, "host_key")}`,
      `AuthorizedKeysFile ${path.join(dir, "authorized_keys")}`,
      `PidFile ${path.join(dir, "sshd.pid")}`,
      "UsePAM no",
      "StrictModes no",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PermitRootLogin prohibit-password",
      "Subsystem sftp internal-sftp",
      "LogLevel ERROR",
      "",
    ].join("\n"),
  );
  // sshd refuses to start without its privilege-separation directory.
  if (!existsSync("/run/sshd")) mkdirSync("/run/sshd", { mode: 0o755 });
  const dataDir = path.join(dir, "data");
  mkdirSync(dataDir);
  const server = await startProcess("/usr/sbin/sshd", ["-D", "-e", "-f", config], port, dir, tmp.cleanup);
  return {
    ...server,
    pid: server.child.pid!,
    username: userInfo().username,
    clientKey: readFileSync(path.join(dir, "client_key"), "utf8"),
    clientKeyFile: path.join(dir, "client_key"),
    knownHostsFile: path.join(dir, "known_hosts"),
    dataDir,
  };
}

/** The well-known development account every Azurite instance has. */
export const AZURITE_ACCOUNT = "devstoreaccount1";
export const AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/** Azurite's blob service (from node_modules) on a free loopback port, storing under a temporary directory. */
export async function startAzurite(): Promise<TestServer & { connectionString: string }> {
  const tmp = tempDir("cairn-azurite-");
  const port = await freePort();
  const bin = path.join(ROOT, "node_modules", ".bin", "azurite-blob");
  const server = await startProcess(bin, ["--blobHost", "127.0.0.1", "--blobPort", String(port), "--location", tmp.dir, "--silent", "--skipApiVersionCheck"], port, tmp.dir, tmp.cleanup);
  const connectionString = `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=http://127.0.0.1:${port}/${AZURITE_ACCOUNT};`;
  return { ...server, connectionString };
}

/** A server binary that .ci/run builds into ~/.cache/cairn/bin with `go install`. */
function cachedBinary(name: string, module: string): string {
  const bin = path.join(process.env.XDG_CACHE_HOME || path.join(homedir(), ".cache"), "cairn", "bin", name);
  if (!existsSync(bin)) {
    throw new Error(`${bin} is missing: build it with GOBIN=${path.dirname(bin)} go install ${module} (bash .ci/run does this)`);
  }
  return bin;
}

/** MinIO (built into ~/.cache/cairn/bin by .ci/run) on a free loopback port. */
export async function startMinio(): Promise<TestServer & { endpoint: string; accessKeyId: string; secretAccessKey: string }> {
  const bin = cachedBinary("minio", "github.com/minio/minio@latest");
  const tmp = tempDir("cairn-minio-");
  const [port, console] = [await freePort(), await freePort()];
  const accessKeyId = "cairn-test";
  const secretAccessKey = "cairn-test-secret";
  const server = await startProcess(
    bin,
    ["server", path.join(tmp.dir, "data"), "--quiet", "--address", `127.0.0.1:${port}`, "--console-address", `127.0.0.1:${console}`],
    port,
    tmp.dir,
    tmp.cleanup,
    { MINIO_ROOT_USER: accessKeyId, MINIO_ROOT_PASSWORD: secretAccessKey, MINIO_BROWSER: "off", MINIO_UPDATE: "off" },
  );
  return { ...server, endpoint: `http://127.0.0.1:${port}`, accessKeyId, secretAccessKey };
}

/** fake-gcs-server (built into ~/.cache/cairn/bin by .ci/run) on a free loopback port, in memory. */
export async function startFakeGcs(): Promise<TestServer & { endpoint: string }> {
  const bin = cachedBinary("fake-gcs-server", "github.com/fsouza/fake-gcs-server@latest");
  const tmp = tempDir("cairn-gcs-");
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const server = await startProcess(
    bin,
    ["-scheme", "http", "-host", "127.0.0.1", "-port", String(port), "-backend", "memory", "-external-url", endpoint, "-log-level", "error"],
    port,
    tmp.dir,
    tmp.cleanup,
  );
  return { ...server, endpoint };
}

/** Something for Prometheus to scrape: its job name, base URL, and the bearer token it needs, if any. */
export interface ScrapeTarget {
  job: string;
  url: string;
  token?: string;
}

/**
 * Debian's Prometheus (.ci/run installs the package with its service kept from
 * starting) on a free loopback port, scraping each target's /metrics every second,
 * with a bearer token read from a file where one is given, as an operator would configure it.
 */
export async function startPrometheus(targets: ScrapeTarget[]): Promise<TestServer & { url: string }> {
  const bin = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"].find((p) => existsSync(p));
  if (!bin) throw new Error("prometheus is not installed: apt-get install prometheus (.ci/run does it, keeping the package's own service from starting)");
  const tmp = tempDir("cairn-prometheus-");
  const port = await freePort();
  const jobs = targets.map((t) => {
    const lines = [`  - job_name: ${t.job}`, "    metrics_path: /metrics"];
    if (t.token) {
      const tokenFile = path.join(tmp.dir, `${t.job}.token`);
      writeFileSync(tokenFile, t.token, { mode: 0o600 });
      lines.push("    authorization:", "      type: Bearer", `      credentials_file: ${tokenFile}`);
    }
    lines.push("    static_configs:", `      - targets: ["${new URL(t.url).host}"]`);
    return lines.join("\n");
  });
  writeFileSync(path.join(tmp.dir, "prometheus.yml"), ["global:", "  scrape_interval: 1s", "  evaluation_interval: 1s", "scrape_configs:", ...jobs, ""].join("\n"));
  const server = await startProcess(
    bin,
    [`--config.file=${path.join(tmp.dir, "prometheus.yml")}`, `--storage.tsdb.path=${path.join(tmp.dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`, "--log.level=warn"],
    port,
    tmp.dir,
    tmp.cleanup,
  );
  // It listens before its storage is open; /-/ready answers 200 once queries work.
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    const ready = await fetch(`${url}/-/ready`).then((r) => r.ok, () => false);
    if (ready) break;
    if (i === 300) {
      await server.stop();
      throw new Error("prometheus listens but is not ready after 30 s");
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { ...server, url };
}
