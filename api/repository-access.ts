import { readdir } from "node:fs/promises";
import * as path from "node:path";
import { BackendError, type Backend } from "../backends/backend.js";
import { openBackendWith, type Credentials } from "../backends/credentials.js";
import { parseRepositoryUrl } from "../backends/url.js";
import { CairnError, RepositoryNotFoundError, WrongPasswordError } from "../engine/errors.js";
import { Repository } from "../engine/repository.js";
import { ApiError } from "./errors.js";

/**
 * The canonical form of a repository URL, or undefined when it names no
 * destination: an absolute local path (or local:/path), or an s3:, sftp:,
 * azure: or gs: location. The API and the workers must agree on it.
 */
export function repositoryUrl(url: string): string | undefined {
  let dest;
  try {
    dest = parseRepositoryUrl(url);
  } catch {
    return undefined;
  }
  if (dest.type !== "local") return url;
  return path.isAbsolute(dest.path) ? path.resolve(dest.path) : undefined; // resolve drops a trailing slash, so one place has one name
}

/**
 * Creates a repository at `url` when nothing is there, otherwise opens it to
 * prove the password (and the credentials, over the API's environment).
 * Returns whether it was created.
 */
export async function initOrVerify(url: string, password: string, credentials: Credentials = {}): Promise<boolean> {
  let backend: Backend | undefined;
  try {
    backend = await openBackendWith(url, credentials);
    const created = !(await backend.exists("config"));
    if (created && parseRepositoryUrl(url).type === "local" && (await holdsFiles(url))) {
      throw new ApiError(422, "Not a repository", `${url} holds files but no Cairn repository; give a new or empty directory to create one, or the path of an existing repository`);
    }
    if (created) await backend.ensureContainer?.();
    const repo = created ? await Repository.init(backend, password, { threads: 0 }) : await Repository.open(backend, password, { threads: 0 });
    await repo.close();
    return created;
  } catch (err) {
    throw asProblem(err, url);
  } finally {
    await backend?.close?.();
  }
}

/** True when `dir` is a directory with entries: creating a repository there would mix it with someone's files. */
async function holdsFiles(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length > 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "ENOTDIR") return false;
    throw err;
  }
}

/**
 * Opens a registered repository with its password and credentials, runs `fn` and
 * closes it; the engine's errors become problems the caller can act on.
 */
export async function withRepository<T>(url: string, password: string, credentials: Credentials, fn: (repo: Repository) => Promise<T>): Promise<T> {
  let repo: Repository;
  let backend: Backend | undefined;
  try {
    backend = await openBackendWith(url, credentials);
    repo = await Repository.open(backend, password, { threads: 0, ownsBackend: true });
  } catch (err) {
    await backend?.close?.();
    throw asProblem(err, url);
  }
  try {
    return await fn(repo);
  } finally {
    await repo.close();
  }
}

function asProblem(err: unknown, url: string): unknown {
  if (err instanceof WrongPasswordError) {
    return new ApiError(422, "Wrong repository password", `the password does not open the repository at ${url}; give the password it was created with`);
  }
  if (err instanceof RepositoryNotFoundError) {
    return new ApiError(422, "Repository missing", `there is no Cairn repository at ${url} any more; check that its disk is mounted, or register it again`);
  }
  if (err instanceof CairnError) return new ApiError(422, "Repository unusable", err.message);
  if (err instanceof BackendError) {
    const check = parseRepositoryUrl(url).type === "local" ? "the path and its permissions" : "the location and its credentials (the repository's `credentials`, else the API's environment)";
    return new ApiError(422, "Repository unusable", `cannot use ${url}: ${err.message}; check ${check}`);
  }
  return err;
}
