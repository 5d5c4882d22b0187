import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { Backend } from "./backend.js";
import type { SecretBox } from "../engine/secret-box.js";
import { openBackend, parseRepositoryUrl, type Destination, type Env, type OpenOptions } from "./url.js";

/** Credentials for one destination: some of the environment variables its backend reads, by name. */
export type Credentials = Record<string, string>;

/**
 * The environment variables that may be stored with a repository, per kind of
 * destination: the ones backends/url.ts reads for it, plus CAIRN_SFTP_KEY (the
 * private key itself, for platforms where the worker has no file to point to).
 */
export const CREDENTIAL_VARIABLES: Record<Destination["type"], readonly string[]> = {
  local: [],
  s3: ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_SESSION_TOKEN", "CAIRN_S3_STORAGE_CLASS"],
  azure: ["AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY"],
  gs: ["GOOGLE_APPLICATION_CREDENTIALS", "CAIRN_GCS_KEY", "CAIRN_GCS_ENDPOINT"],
  sftp: ["CAIRN_SFTP_PASSWORD", "CAIRN_SFTP_KEY", "CAIRN_SFTP_KEY_FILE", "CAIRN_SFTP_KNOWN_HOSTS"],
};

/**
 * Variables that name a file on the worker: stored with a repository, they would
 * let whoever registers it use the worker's own key files. They count as the
 * worker's environment credentials (useEnvironmentCredentials); CAIRN_SFTP_KEY and
 * CAIRN_GCS_KEY carry the key itself instead.
 */
export const WORKER_FILE_VARIABLES: readonly string[] = ["CAIRN_SFTP_KEY_FILE", "GOOGLE_APPLICATION_CREDENTIALS"];

/**
 * The process's own credentials: removed from the environment a backend sees
 * unless the repository may use them (see ConnectOptions.ambientCredentials).
 */
const AMBIENT_VARIABLES = [
  ...["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"],
  ...["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN"],
  ...["AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY", "GOOGLE_APPLICATION_CREDENTIALS", "CAIRN_GCS_KEY"],
  ...["CAIRN_SFTP_PASSWORD", "CAIRN_SFTP_KEY", "CAIRN_SFTP_KEY_FILE", "CAIRN_SFTP_KEY_PASSPHRASE"],
];

/** `env` without the process's own credentials. */
export function withoutAmbientCredentials(env: Env): Env {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !AMBIENT_VARIABLES.includes(name)));
}

/**
 * The variables of `credentials` that cannot go with the repository at `url`,
 * each with why; empty when all can. File variables need `environment` (the
 * repository may use the worker's own credentials).
 */
export function credentialProblems(url: string, credentials: Credentials, environment = false): { variable: string; message: string }[] {
  const type = parseRepositoryUrl(url).type;
  const allowed = CREDENTIAL_VARIABLES[type];
  return Object.keys(credentials).flatMap((variable) => {
    if (!allowed.includes(variable)) {
      return [{ variable, message: allowed.length === 0 ? `a ${type} repository takes no credentials; leave credentials out` : `${variable} is not a credential of ${type}: repositories; use ${allowed.join(", ")}` }];
    }
    if (!environment && WORKER_FILE_VARIABLES.includes(variable)) {
      const instead = variable === "CAIRN_SFTP_KEY_FILE" ? "CAIRN_SFTP_KEY" : "CAIRN_GCS_KEY";
      return [{ variable, message: `${variable} names a file on the workers, which counts as their own credentials; give the key itself in ${instead}, or register with useEnvironmentCredentials (admins only)` }];
    }
    return [];
  });
}

/**
 * Opens the backend at `url` with `credentials` over `env` (stored credentials win
 * over the process's own, which are left out unless `options.ambientCredentials`
 * allows them). CAIRN_SFTP_KEY is written to a 0600 file for the SFTP backend to
 * read, and removed once the backend is open: it reads the key then.
 */
export async function openBackendWith(url: string, credentials: Credentials = {}, processEnv: Env = process.env, options: OpenOptions = {}): Promise<Backend> {
  const env = options.ambientCredentials === false ? withoutAmbientCredentials(processEnv) : processEnv;
  const { CAIRN_SFTP_KEY: key, ...rest } = credentials;
  if (key === undefined) return openBackend(url, { ...env, ...rest }, options);
  const dir = await mkdtemp(path.join(tmpdir(), "cairn-sftp-key-"));
  try {
    const keyFile = path.join(dir, "key");
    await writeFile(keyFile, key.endsWith("\n") ? key : `${key}\n`, { mode: 0o600 });
    return await openBackend(url, { ...env, ...rest, CAIRN_SFTP_KEY_FILE: keyFile }, options);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Stored credentials, unsealed with the platform secret key; none when nothing was stored. */
export function unsealCredentials(secretBox: SecretBox, sealed: string | null | undefined): Credentials {
  return sealed ? (JSON.parse(secretBox.open(sealed)) as Credentials) : {};
}
