import { existsSync, readFileSync } from "node:fs";
import type { TcpSocketConnectOpts } from "node:net";
import { homedir, userInfo } from "node:os";
import * as path from "node:path";
import { BackendError, type Backend, type ObjectLock } from "./backend.js";
import { LocalBackend } from "./local.js";
import { RetryBackend, type RetryOptions } from "./retry.js";

export type Env = Record<string, string | undefined>;

/** Resolves a host name for a connection (net.connect's and http.Agent's `lookup`). */
export type LookupFunction = NonNullable<TcpSocketConnectOpts["lookup"]>;

/** How a backend may connect and authenticate, beyond its location and variables. */
export interface ConnectOptions {
  /** Resolves host names for S3 and SFTP connections; the execution policy uses it to refuse addresses at connect time. */
  lookup?: LookupFunction;
  /**
   * Whether credentials the process finds on its own may be used: the SDKs' usual
   * chains (~/.aws, instance roles, Application Default Credentials) and ~/.ssh keys.
   * True for the CLI; a worker allows it only for repositories registered with
   * useEnvironmentCredentials.
   */
  ambientCredentials?: boolean;
}

export interface OpenOptions extends ConnectOptions {
  retry?: RetryOptions;
}

/** Where a repository lives, as written in -r / CAIRN_REPOSITORY (no secrets: those come from the environment). */
export type Destination =
  | { type: "local"; path: string }
  | { type: "s3"; endpoint?: string; bucket: string; prefix: string }
  | { type: "sftp"; user?: string; host: string; port: number; path: string }
  | { type: "azure"; container: string; prefix: string }
  | { type: "gs"; bucket: string; prefix: string };

const FORMS =
  "use a path, local:/path, s3:https://host/bucket/prefix, sftp:user@host:port/path, azure:container/prefix or gs:bucket/prefix";

function invalid(url: string, why: string): BackendError {
  return new BackendError("permanent", `cannot read the repository location "${url}": ${why}; ${FORMS}`, { reason: "configuration" });
}

/** `bucket/some/prefix` or restic's `bucket:/some/prefix`. */
function splitBucket(url: string, rest: string, what: string): { name: string; prefix: string } {
  const m = /^([^/:]+):?\/*(.*)$/.exec(rest);
  if (!m) throw invalid(url, `it names no ${what}`);
  return { name: m[1], prefix: m[2].replace(/\/+$/, "") };
}

/** Reads a repository location. Throws a permanent BackendError saying what is wrong. */
export function parseRepositoryUrl(url: string): Destination {
  const scheme = /^([a-z][a-z0-9]*):/i.exec(url)?.[1].toLowerCase();
  // One letter before the colon is a Windows drive, not a scheme.
  if (!scheme || scheme.length === 1) return { type: "local", path: url };
  const rest = url.slice(scheme.length + 1);
  switch (scheme) {
    case "local":
      if (!rest) throw invalid(url, "the path is empty");
      return { type: "local", path: rest };
    case "s3": {
      if (/^https?:\/\//i.test(rest)) {
        const u = new URL(rest);
        const [bucket, ...prefix] = u.pathname.split("/").filter(Boolean);
        if (!bucket) throw invalid(url, "it names no bucket after the host");
        return { type: "s3", endpoint: u.origin, bucket, prefix: prefix.join("/") };
      }
      const [host, bucket, ...prefix] = rest.split("/").filter(Boolean);
      if (!host || !bucket) throw invalid(url, "an S3 location needs a host and a bucket");
      // AWS picks its regional endpoint itself; any other host is an S3-compatible service.
      const endpoint = /(^|\.)amazonaws\.com$/i.test(host) ? undefined : `https://${host}`;
      return { type: "s3", endpoint, bucket, prefix: prefix.join("/") };
    }
    case "sftp": {
      if (rest.startsWith("//")) {
        const u = new URL(url);
        return sftpPath(url, { user: decodeURIComponent(u.username) || undefined, host: u.hostname, port: u.port ? Number(u.port) : 22 }, decodeURIComponent(u.pathname));
      }
      const m = /^(?:([^@/]+)@)?([^:/@]+):(?:(\d+)(?=\/|$))?(.*)$/.exec(rest);
      if (!m) throw invalid(url, "an SFTP location is user@host:port/path or user@host:/path");
      return sftpPath(url, { user: m[1], host: m[2], port: m[3] ? Number(m[3]) : 22 }, m[4]);
    }
    case "azure": {
      const { name, prefix } = splitBucket(url, rest, "container");
      return { type: "azure", container: name, prefix };
    }
    case "gs": {
      const { name, prefix } = splitBucket(url, rest, "bucket");
      return { type: "gs", bucket: name, prefix };
    }
    default:
      throw invalid(url, `"${scheme}:" is not a kind of destination Cairn knows`);
  }
}

/** `/~/dir` is a path relative to the login directory (the only way to write one after a port). */
function sftpPath(url: string, who: { user?: string; host: string; port: number }, p: string): Destination {
  if (!who.host) throw invalid(url, "it names no host");
  if (!Number.isInteger(who.port) || who.port < 1 || who.port > 65535) throw invalid(url, `${who.port} is not a port`);
  const dir = p.startsWith("/~/") ? p.slice(3) : p;
  if (!dir || dir === "/~") throw invalid(url, "it names no directory on the server");
  return { type: "sftp", ...who, path: dir };
}

/**
 * The backend for one destination, with credentials from `env`; no retries around it.
 * Each cloud SDK is loaded only when its destination is used: together they would
 * add a second to the start of every command.
 */
export async function openDestination(dest: Destination, env: Env, connect: ConnectOptions = {}): Promise<Backend> {
  const ambient = connect.ambientCredentials ?? true;
  switch (dest.type) {
    case "local":
      return new LocalBackend(dest.path);
    case "s3": {
      const { S3Backend } = await import("./s3.js");
      if (!ambient && !(env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY)) throw noCredentials(dest, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
      return new S3Backend({
        lookup: connect.lookup,
        bucket: dest.bucket,
        prefix: dest.prefix,
        endpoint: dest.endpoint,
        forcePathStyle: dest.endpoint !== undefined,
        region: env.AWS_REGION ?? env.AWS_DEFAULT_REGION,
        accessKeyId: env.AWS_ACCESS_KEY_ID,
        secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
        sessionToken: env.AWS_SESSION_TOKEN,
        storageClass: env.CAIRN_S3_STORAGE_CLASS,
        objectLock: objectLockFrom(env),
      });
    }
    case "azure": {
      const { AzureBackend } = await import("./azure.js");
      return new AzureBackend({
        container: dest.container,
        prefix: dest.prefix,
        connectionString: env.AZURE_STORAGE_CONNECTION_STRING,
        account: env.AZURE_STORAGE_ACCOUNT,
        accountKey: env.AZURE_STORAGE_KEY,
      });
    }
    case "gs": {
      const { GcsBackend } = await import("./gcs.js");
      if (!ambient && !env.GOOGLE_APPLICATION_CREDENTIALS && !env.CAIRN_GCS_KEY && !env.CAIRN_GCS_ENDPOINT) throw noCredentials(dest, "CAIRN_GCS_KEY (the service account key itself)");
      return new GcsBackend({
        bucket: dest.bucket,
        prefix: dest.prefix,
        // Not STORAGE_EMULATOR_HOST: the client library reads that one itself, with a different base path.
        apiEndpoint: env.CAIRN_GCS_ENDPOINT,
        projectId: env.GOOGLE_CLOUD_PROJECT ?? env.GOOGLE_PROJECT_ID,
        keyFilename: env.GOOGLE_APPLICATION_CREDENTIALS,
        credentials: env.CAIRN_GCS_KEY ? serviceAccountKey(env.CAIRN_GCS_KEY) : undefined,
      });
    }
    case "sftp": {
      const { SftpBackend } = await import("./sftp.js");
      return new SftpBackend({ host: dest.host, port: dest.port, username: dest.user ?? env.USER ?? userInfo().username, path: dest.path, lookup: connect.lookup, ...sshCredentials(env, dest, ambient) });
    }
  }
}

/** S3 Object Lock for new objects from CAIRN_S3_OBJECT_LOCK_DAYS and CAIRN_S3_OBJECT_LOCK_MODE (GOVERNANCE unless told). */
export function objectLockFrom(env: Env): ObjectLock | undefined {
  const days = env.CAIRN_S3_OBJECT_LOCK_DAYS;
  const mode = (env.CAIRN_S3_OBJECT_LOCK_MODE ?? "GOVERNANCE").toUpperCase();
  if (days === undefined || days === "") return undefined;
  if (!/^\d+$/.test(days) || Number(days) < 1 || Number(days) > 36500) {
    throw new BackendError("permanent", `CAIRN_S3_OBJECT_LOCK_DAYS must be a whole number of days from 1 to 36500, got "${days}"`, { reason: "configuration" });
  }
  if (mode !== "GOVERNANCE" && mode !== "COMPLIANCE") {
    throw new BackendError("permanent", `CAIRN_S3_OBJECT_LOCK_MODE must be governance or compliance, got "${env.CAIRN_S3_OBJECT_LOCK_MODE}"`, { reason: "configuration" });
  }
  return { mode, days: Number(days) };
}

function noCredentials(dest: Destination, what: string): BackendError {
  return new BackendError(
    "permanent",
    `no credentials for this ${dest.type}: repository: give ${what} in its credentials (this process's own are used only for repositories registered with useEnvironmentCredentials)`,
    { reason: "no-credentials" },
  );
}

/** A service account key given as JSON text (CAIRN_GCS_KEY). */
function serviceAccountKey(json: string): { client_email: string; private_key: string } {
  try {
    const key = JSON.parse(json) as { client_email?: unknown; private_key?: unknown };
    if (typeof key.client_email === "string" && typeof key.private_key === "string") return { client_email: key.client_email, private_key: key.private_key };
  } catch {
    // reported below
  }
  throw new BackendError("permanent", "CAIRN_GCS_KEY must hold a service account key as JSON, with client_email and private_key", { reason: "configuration" });
}

/**
 * CAIRN_SFTP_KEY_FILE, CAIRN_SFTP_PASSWORD, else (with `ambient`) the usual ~/.ssh
 * keys; CAIRN_SFTP_KNOWN_HOSTS, else ~/.ssh/known_hosts.
 */
function sshCredentials(env: Env, dest: { host: string }, ambient: boolean) {
  const ssh = path.join(env.HOME ?? homedir(), ".ssh");
  const knownHostsFile = env.CAIRN_SFTP_KNOWN_HOSTS ?? path.join(ssh, "known_hosts");
  const usual = ambient && !env.CAIRN_SFTP_PASSWORD ? ["id_ed25519", "id_ecdsa", "id_rsa"].map((n) => path.join(ssh, n)).find(existsSync) : undefined;
  const keyFile = env.CAIRN_SFTP_KEY_FILE ?? usual;
  if (!keyFile && !env.CAIRN_SFTP_PASSWORD) {
    const files = ambient ? "CAIRN_SFTP_KEY_FILE to a private key file" : "CAIRN_SFTP_KEY (the private key itself)";
    throw new BackendError("permanent", `no SSH credentials for ${dest.host}: set ${files} or CAIRN_SFTP_PASSWORD`, { reason: "no-credentials" });
  }
  let privateKey: Buffer | undefined;
  if (keyFile) {
    try {
      privateKey = readFileSync(keyFile);
    } catch (err) {
      throw new BackendError("permanent", `cannot read the SSH key ${keyFile} (${(err as Error).message}); check CAIRN_SFTP_KEY_FILE`, { reason: "no-credentials" });
    }
  }
  return { privateKey, passphrase: env.CAIRN_SFTP_KEY_PASSPHRASE, password: env.CAIRN_SFTP_PASSWORD, knownHostsFile };
}

/**
 * Opens the repository location given on the command line or in CAIRN_REPOSITORY,
 * with credentials from the usual environment variables, behind a RetryBackend.
 */
export async function openBackend(url: string, env: Env = process.env, options: OpenOptions = {}): Promise<Backend> {
  return new RetryBackend(await openDestination(parseRepositoryUrl(url), env, options), options.retry);
}
