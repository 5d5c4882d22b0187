/**
 * The Temporal CLI, provisioned without asking the user to install anything by
 * hand, and its dev server (`temporal server start-dev`) started on chosen ports
 * with its state in a SQLite file and Cairn's search attributes registered.
 *
 * Run `node dist/scripts/temporal.js provision` to find or build the CLI and print its path.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { accessSync, constants, mkdirSync, readdirSync, renameSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { homedir } from "node:os";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { Connection } from "@temporalio/client";
import proto from "@temporalio/proto";
import { SEARCH_ATTRIBUTES } from "../workflows/messages.js";

/** The CLI release `go install` builds when nothing else is found. */
export const TEMPORAL_CLI_MODULE = "github.com/temporalio/cli/cmd/temporal@v1.5.1";

type Log = (line: string) => void;
const stderrLog: Log = (line) => process.stderr.write(`temporal: ${line}\n`);

/** Where a built or downloaded CLI is kept between runs: $XDG_CACHE_HOME/cairn/bin, or ~/.cache/cairn/bin. */
export function cacheBinDir(): string {
  return path.join(process.env.XDG_CACHE_HOME || path.join(homedir(), ".cache"), "cairn", "bin");
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir && isExecutable(path.join(dir, name))) return path.join(dir, name);
  }
  return undefined;
}

/**
 * Finds the Temporal CLI, in this order: TEMPORAL_CLI_PATH; `temporal` on PATH;
 * the cached build; `go install` into the cache; the SDK's own download (needs
 * @temporalio/testing). Each step says what it does through `log`.
 */
export async function findTemporalCli(log: Log = stderrLog): Promise<string> {
  const installed = installedTemporalCli(log);
  if (installed) return installed;
  const cached = path.join(cacheBinDir(), "temporal");
  const go = onPath("go") ?? (isExecutable("/usr/local/go/bin/go") ? "/usr/local/go/bin/go" : undefined);
  if (go) {
    log(`building ${TEMPORAL_CLI_MODULE} with ${go} into ${cacheBinDir()} (a few minutes, once)`);
    mkdirSync(cacheBinDir(), { recursive: true });
    // Go's output goes to stderr: stdout carries only the path (`provision` prints it for scripts).
    const built = spawnSync(go, ["install", TEMPORAL_CLI_MODULE], { env: { ...process.env, GOBIN: cacheBinDir() }, stdio: ["ignore", 2, 2] });
    if (built.status === 0 && isExecutable(cached)) return cached;
    log(`go install failed (exit ${built.status ?? built.signal}); trying the SDK's download`);
  } else {
    log("no Go toolchain found (PATH, /usr/local/go/bin/go); trying the SDK's download");
  }
  const downloaded = await downloadWithSdk(log);
  if (downloaded) return downloaded;
  throw new Error(
    "no Temporal CLI found: install Go (https://go.dev/dl/) so Cairn can build it, install the CLI (https://temporal.download/cli.sh), " +
      "or set TEMPORAL_CLI_PATH to a `temporal` binary",
  );
}

/** The CLI from TEMPORAL_CLI_PATH, PATH or the cached build, without building or downloading one. */
export function installedTemporalCli(log: Log = stderrLog): string | undefined {
  const fromEnv = process.env.TEMPORAL_CLI_PATH;
  if (fromEnv) {
    if (!isExecutable(fromEnv)) throw new Error(`TEMPORAL_CLI_PATH=${fromEnv} is not an executable file; fix the path or unset it to let Cairn find or build the CLI`);
    log(`using TEMPORAL_CLI_PATH=${fromEnv}`);
    return fromEnv;
  }
  const found = onPath("temporal");
  if (found) {
    log(`using ${found} (on PATH)`);
    return found;
  }
  const cached = path.join(cacheBinDir(), "temporal");
  if (isExecutable(cached)) {
    log(`using the cached build ${cached}`);
    return cached;
  }
  return undefined;
}

/**
 * The SDK's test package downloads the CLI for its ephemeral server. Starting (and
 * stopping) one with the cache directory as download directory leaves the binary
 * there; it is renamed to `temporal` so the next run finds it as the cached build.
 */
async function downloadWithSdk(log: Log): Promise<string | undefined> {
  const name = "@temporalio/testing";
  let testing: { TestWorkflowEnvironment: { createLocal(o: unknown): Promise<{ teardown(): Promise<void> }> } };
  try {
    testing = await import(name);
  } catch {
    log(`${name} is not installed; on a machine with internet access, \`npm i -D ${name}\` lets Cairn download the CLI through the SDK`);
    return undefined;
  }
  const dir = cacheBinDir();
  mkdirSync(dir, { recursive: true });
  log(`downloading the CLI with ${name} into ${dir}`);
  const env = await testing.TestWorkflowEnvironment.createLocal({ server: { executable: { type: "cached-download", downloadDir: dir } } });
  await env.teardown();
  const candidates = readdirSync(dir)
    .filter((f) => f.startsWith("temporal") && isExecutable(path.join(dir, f)))
    .sort((a, b) => statSync(path.join(dir, b)).mtimeMs - statSync(path.join(dir, a)).mtimeMs);
  if (!candidates.length) return undefined;
  const target = path.join(dir, "temporal");
  renameSync(path.join(dir, candidates[0]), target);
  return target;
}

/** A TCP port nobody listens on right now (on the given interface). */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface DevServerOptions {
  /** SQLite file holding the server's state across restarts; in memory when omitted. */
  dbFile?: string;
  ip?: string;
  /** Frontend (gRPC) port; a free one when omitted. */
  port?: number;
  /** Web UI port; a free one when omitted (unless headless). */
  uiPort?: number;
  /** No Web UI. */
  headless?: boolean;
  namespace?: string;
  log?: Log;
  /** How long to wait for the frontend to answer (ms). */
  startTimeoutMs?: number;
}

export interface DevServer {
  /** host:port of the frontend, for Connection.connect / NativeConnection.connect. */
  address: string;
  uiUrl?: string;
  pid: number;
  /** Stops this server only: SIGTERM, then SIGKILL when it has not exited after a while. */
  stop(): Promise<void>;
}

/**
 * Starts `temporal server start-dev` and resolves once its frontend answers and
 * Cairn's search attributes (Keyword) are registered in the namespace.
 */
export async function startDevServer(options: DevServerOptions = {}): Promise<DevServer> {
  // The server binds ports it chose itself besides ours (HTTP API, metrics, internal services): on a
  // busy machine another process can take one between its choice and its bind, and the server then
  // exits at start. That is worth a second try on other ports, never an error at the first.
  const attempts = options.port === undefined ? 3 : 1;
  for (let attempt = 1; ; attempt++) {
    try {
      return await startDevServerOnce(options);
    } catch (err) {
      if (!(err instanceof ExitedAtStart) || attempt >= attempts) throw err;
      (options.log ?? stderrLog)(`the Temporal dev server exited at start (${err.message.split("\n")[0]}); trying again on other ports`);
    }
  }
}

/** The dev server exited before it answered (as opposed to not answering in time). */
class ExitedAtStart extends Error {}

async function startDevServerOnce(options: DevServerOptions): Promise<DevServer> {
  const log = options.log ?? stderrLog;
  const cli = await findTemporalCli(log);
  const ip = options.ip ?? "127.0.0.1";
  const namespace = options.namespace ?? "default";
  const port = options.port ?? (await freePort(ip));
  // The server picks free ports for its HTTP API, metrics and internal services itself.
  const args = ["server", "start-dev", "--ip", ip, "--port", String(port)];
  // "default" always exists; naming it again would register it twice.
  if (namespace !== "default") args.push("--namespace", namespace);
  if (options.dbFile) args.push("--db-filename", options.dbFile);
  let uiUrl: string | undefined;
  if (options.headless) args.push("--headless");
  else {
    const uiPort = options.uiPort ?? (await freePort(ip));
    args.push("--ui-port", String(uiPort));
    uiUrl = `http://${ip}:${uiPort}`;
  }
  for (const name of Object.values(SEARCH_ATTRIBUTES)) args.push("--search-attribute", `${name}=Keyword`);
  // Task priority (a plan's high/normal/low) is served by the priority matcher, which Server 1.29 turns on by this setting.
  args.push("--dynamic-config-value", "matching.useNewMatcher=true");

  log(`starting ${cli} ${args.join(" ")}`);
  const child = spawn(cli, args, { stdio: ["ignore", "pipe", "pipe"] });
  // The head (where a Go panic says why) and the tail of what the server printed.
  let head = "";
  const output: string[] = [];
  const keep = (d: Buffer) => {
    if (head.length < 2000) head += d.toString().slice(0, 2000 - head.length);
    output.push(d.toString());
    if (output.length > 50) output.shift();
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const address = `${ip}:${port}`;
  try {
    await waitUntilReady(address, namespace, child, options.startTimeoutMs ?? 60_000);
  } catch (err) {
    const exitedEarly = child.exitCode !== null || child.signalCode !== null;
    await stopChild(child, exited);
    const tail = output.join("").slice(-4000);
    const printed = tail.startsWith(head) ? tail : `${head}\n...\n${tail}`;
    const message = `the Temporal dev server did not start: ${(err as Error).message}\n${printed}`;
    throw exitedEarly ? new ExitedAtStart(message) : new Error(message);
  }
  log(`dev server ready at ${address}${uiUrl ? `, Web UI ${uiUrl}` : ""} (pid ${child.pid})`);
  return { address, uiUrl, pid: child.pid!, stop: () => stopChild(child, exited) };
}

async function waitUntilReady(address: string, namespace: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`it exited with ${child.exitCode ?? child.signalCode}`);
    try {
      const connection = await Connection.connect({ address, connectTimeout: 2000 });
      try {
        const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
        const missing = Object.values(SEARCH_ATTRIBUTES).filter((n) => !customAttributes?.[n]);
        if (missing.length === 0) return;
        // A database file from an older Cairn lacks the attributes added since: --search-attribute only registers them in a new one.
        if (Object.values(SEARCH_ATTRIBUTES).some((n) => customAttributes?.[n])) {
          const keyword = proto.temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
          await connection.operatorService.addSearchAttributes({ namespace, searchAttributes: Object.fromEntries(missing.map((n) => [n, keyword])) }).catch(() => undefined);
        }
        last = new Error(`search attributes ${missing.join(", ")} are not registered yet`);
      } finally {
        await connection.close();
      }
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`no answer from ${address} within ${timeoutMs / 1000}s (${(last as Error)?.message})`);
}

async function stopChild(child: ChildProcess, exited: Promise<void>, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

async function main(argv: string[]): Promise<void> {
  if (argv[0] !== "provision") {
    process.stderr.write("usage: node dist/scripts/temporal.js provision   (find or build the Temporal CLI and print its path)\n");
    process.exitCode = 2;
    return;
  }
  process.stdout.write((await findTemporalCli()) + "\n");
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((err) => {
    process.stderr.write(`temporal: ${(err as Error).message}\n`);
    process.exitCode = 1;
  });
}
