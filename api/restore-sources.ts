import { eq, inArray } from "drizzle-orm";
import { plans, repositories } from "../db/schema.js";
import type { AppDeps } from "./app.js";
import { ApiError } from "./errors.js";
import { findRepository } from "./routes/repositories.js";
import type { RepositoryRow } from "./schedules.js";

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
