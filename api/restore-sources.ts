import { eq, inArray } from "drizzle-orm";
import { unsealCredentials } from "../backends/credentials.js";
import { plans, repositories } from "../db/schema.js";
import { loadSnapshots, type SnapshotEntry } from "../engine/snapshot.js";
import type { AppDeps } from "./app.js";
import { ApiError } from "./errors.js";
import { withRepository } from "./repository-access.js";
import { findRepository } from "./routes/repositories.js";
import type { RepositoryRow } from "./schedules.js";

/** Problems withRepository reports for a repository that is gone or down, as opposed to a wrong password. */
const UNREACHABLE = new Set(["Repository missing", "Repository unusable"]);

/**
 * The repositories that may serve a restore of `repo`'s snapshots when `repo`
 * cannot be reached, in the order they are tried: those the request names, then
 * the secondaries of every plan that backs up into `repo`.
 */
export async function fallbackRepositories(deps: AppDeps, repo: RepositoryRow, requestedIds: string[] = []): Promise<RepositoryRow[]> {
  const rows: RepositoryRow[] = [];
  for (const [i, id] of requestedIds.entries()) {
    if (id === repo.id) {
      throw new ApiError(400, "Fallback is the repository itself", `repository ${id} is the one restored from; name repositories that hold copies of its snapshots`, [{ in: "body", path: `fallbackRepositoryIds.${i}`, message: "the restored repository" }]);
    }
    rows.push(await findRepository(deps, id, `fallbackRepositoryIds.${i}`));
  }
  const planSecondaries = (await deps.catalog.select().from(plans).where(eq(plans.repositoryId, repo.id)).orderBy(plans.createdAt)).flatMap((p) => p.secondaryRepositoryIds);
  const ids = [...new Set(planSecondaries)].filter((id) => id !== repo.id && !rows.some((r) => r.id === id));
  if (ids.length) {
    const found = await deps.catalog.select().from(repositories).where(inArray(repositories.id, ids));
    // A plan may still name a repository deleted since; there is nothing to try there.
    for (const id of ids) rows.push(...found.filter((r) => r.id === id));
  }
  return rows;
}

/**
 * Resolves a restore's snapshot reference ("latest" or an id prefix) in `repo`;
 * when `repo` cannot be reached, in the first fallback that can be (the id is then
 * that repository's: the restore finds the same backup elsewhere by its time, host and paths).
 */
export async function resolveSnapshot(deps: AppDeps, repo: RepositoryRow, fallbacks: RepositoryRow[], ref: string): Promise<SnapshotEntry> {
  let firstProblem: unknown;
  for (const candidate of [repo, ...fallbacks]) {
    let snapshots: SnapshotEntry[];
    try {
      snapshots = await withRepository(candidate.url, deps.secretBox.open(candidate.sealedPassword), unsealCredentials(deps.secretBox, candidate.sealedCredentials), loadSnapshots);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 422 && UNREACHABLE.has(err.title))) throw err;
      firstProblem ??= err;
      continue;
    }
    const matching = ref === "latest" ? snapshots.slice(-1) : snapshots.filter((s) => s.id.startsWith(ref));
    if (matching.length === 0) {
      throw new ApiError(404, "Snapshot not found", `repository ${candidate.id} has no snapshot ${ref}; list them with GET /v1/snapshots?repositoryId=${candidate.id}`, [{ in: "body", path: "snapshotId", message: "no such snapshot" }]);
    }
    if (matching.length > 1) {
      throw new ApiError(400, "Ambiguous snapshot id", `${matching.length} snapshots start with ${ref}; give more characters`, [{ in: "body", path: "snapshotId", message: "ambiguous prefix" }]);
    }
    return matching[0];
  }
  throw firstProblem;
}
