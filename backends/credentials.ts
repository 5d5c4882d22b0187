import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { Backend } from "./backend.js";
import type { SecretBox } from "../engine/secret-box.js";
import type { RetryOptions } from "./retry.js";
import { openBackend, parseRepositoryUrl, type Destination, type Env } from "./url.js";

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
  gs: ["GOOGLE_APPLICATION_CREDENTIALS", "CAIRN_GCS_ENDPOINT"],
  sftp: ["CAIRN_SFTP_PASSWORD", "CAIRN_SFTP_KEY", "CAIRN_SFTP_KEY_FILE", "CAIRN_SFTP_KNOWN_HOSTS"],
};

/** The variables of `credentials` that cannot go with the repository at `url`, each with why; empty when all can. */
export function credentialProblems(url: string, credentials: Credentials): { variable: string; message: string }[] {
  const type = parseRepositoryUrl(url).type;
  const allowed = CREDENTIAL_VARIABLES[type];
  return Object.keys(credentials)
    .filter((variable) => !allowed.includes(variable))
    .map((variable) => ({
      variable,
      message: allowed.length === 0 ? `a ${type} repository takes no credentials; leave credentials out` : `${variable} is not a credential of ${type}: repositories; use ${allowed.join(", ")}`,
    }));
}

/**
 * Opens the backend at `url` with `credentials` over `env` (stored credentials win
 * over the process's own). CAIRN_SFTP_KEY is written to a 0600 file for the SFTP
 * backend to read, and removed once the backend is open: it reads the key then.
 */
export async function openBackendWith(url: string, credentials: Credentials = {}, env: Env = process.env, retry?: RetryOptions): Promise<Backend> {
  const { CAIRN_SFTP_KEY: key, ...rest } = credentials;
  if (key === undefined) return openBackend(url, { ...env, ...rest }, retry);
  const dir = await mkdtemp(path.join(tmpdir(), "cairn-sftp-key-"));
  try {
    const keyFile = path.join(dir, "key");
    await writeFile(keyFile, key.endsWith("\n") ? key : `${key}\n`, { mode: 0o600 });
    return await openBackend(url, { ...env, ...rest, CAIRN_SFTP_KEY_FILE: keyFile }, retry);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Stored credentials, unsealed with the platform secret key; none when nothing was stored. */
export function unsealCredentials(secretBox: SecretBox, sealed: string | null | undefined): Credentials {
  return sealed ? (JSON.parse(secretBox.open(sealed)) as Credentials) : {};
}
