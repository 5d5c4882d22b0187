import { eq, inArray, or, sql, type SQL } from "drizzle-orm";
import type { Context, MiddlewareHandler } from "hono";
import type { Catalog } from "../db/client.js";
import { plans, repositories, type TokenScope } from "../db/schema.js";
import type { Principal } from "./auth.js";
import { ApiError } from "./errors.js";
import { ROLES, rolesWith, type Permission } from "./permissions.js";

/**
 * Where a route finds the id of a plan, repository or job it acts on, so a
 * scoped token is held to its plans and repositories before the handler runs.
 * A body field may hold one id or a list of them.
 */
export interface ScopeRef {
  resource: "plan" | "repository" | "job";
  in: "param" | "query" | "body";
  field: string;
}

/**
 * The permission check every non-public route runs before its input is even
 * validated: the caller's role must hold `permission`, and a scoped token may
 * only name plans and repositories of its scope.
 */
export function authorize(permission: Permission, scopeRefs: ScopeRef[] = []): MiddlewareHandler {
  return async (c, next) => {
    const principal = c.get("principal") as Principal | undefined;
    if (!principal) throw new ApiError(401, "Unauthorized", "this endpoint needs a bearer token: send the header Authorization: Bearer <token>");
    if (!ROLES[principal.role].has(permission)) {
      const roles = rolesWith(permission);
      throw new ApiError(
        403,
        "Forbidden",
        `this needs the permission ${permission}, which the role ${principal.role} of token "${principal.tokenName}" does not hold; use a token with the role ${roles.join(" or ")} (an admin creates one with POST /v1/tokens)`,
      );
    }
    if (principal.scope && scopeRefs.length) {
      for (const ref of scopeRefs) {
        for (const id of await idsAt(c, ref)) await checkScope(c.get("deps").catalog, principal, ref, id);
      }
    }
    return next();
  };
}

async function idsAt(c: Context, ref: ScopeRef): Promise<string[]> {
  let value: unknown;
  if (ref.in === "param") value = c.req.param(ref.field);
  else if (ref.in === "query") value = c.req.query(ref.field);
  else {
    // The body is read once and cached by Hono, so the validator after this sees the same; a body that is not JSON is the validator's to refuse.
    value = await c.req.json().then((body: unknown) => (body && typeof body === "object" ? (body as Record<string, unknown>)[ref.field] : undefined), () => undefined);
  }
  const ids = Array.isArray(value) ? value : [value];
  return ids.filter((id): id is string => typeof id === "string" && id.length > 0);
}

async function checkScope(catalog: Catalog, principal: Principal, ref: ScopeRef, id: string): Promise<void> {
  const scope = principal.scope!;
  let allowed: boolean;
  if (ref.resource === "repository") allowed = repositoryInScope(scope, id);
  else if (ref.resource === "plan") allowed = await planInScope(catalog, scope, id);
  else {
    const owner = jobOwner(id);
    allowed = owner?.kind === "plan" ? await planInScope(catalog, scope, owner.id) : owner?.kind === "repository" ? repositoryInScope(scope, owner.id) : false;
  }
  if (!allowed) {
    throw new ApiError(
      403,
      "Outside the token's scope",
      `the token "${principal.tokenName}" is limited to ${describeScope(scope)}; ${ref.resource} ${id} is not among them. Use a token whose scope includes it`,
      ref.in === "body" || ref.in === "query" ? [{ in: ref.in === "body" ? "body" : "query", path: ref.field, message: "outside the token's scope" }] : undefined,
    );
  }
}

export function repositoryInScope(scope: TokenScope, repositoryId: string): boolean {
  return scope.repositoryIds?.includes(repositoryId) ?? false;
}

/** A plan is in scope when the scope names it, or names the repository it backs up into. A plan that does not exist is left to the handler's 404. */
async function planInScope(catalog: Catalog, scope: TokenScope, planId: string): Promise<boolean> {
  if (scope.planIds?.includes(planId)) return true;
  const [plan] = await catalog.select({ repositoryId: plans.repositoryId }).from(plans).where(eq(plans.id, planId));
  return !plan || repositoryInScope(scope, plan.repositoryId);
}

/** The plans a scope reaches, as a condition on the plans table: those it names and those backing up into a repository it names. */
export function plansInScope(scope: TokenScope): SQL {
  const conditions = [
    ...(scope.planIds?.length ? [inArray(plans.id, scope.planIds)] : []),
    ...(scope.repositoryIds?.length ? [inArray(plans.repositoryId, scope.repositoryIds)] : []),
  ];
  return or(...conditions) ?? sql`false`;
}

/** The repositories a scope reaches, as a condition on the repositories table. */
export function repositoriesInScope(scope: TokenScope): SQL {
  return scope.repositoryIds?.length ? inArray(repositories.id, scope.repositoryIds) : sql`false`;
}

/** The ids of the plans a scope reaches. */
export async function scopedPlanIds(catalog: Catalog, scope: TokenScope): Promise<string[]> {
  return (await catalog.select({ id: plans.id }).from(plans).where(plansInScope(scope))).map((p) => p.id);
}

/**
 * Whose a job is, read from the id the API gives it: backup-<planId>-<time> for
 * backups (run now, or scheduled: Temporal appends the scheduled time),
 * restore-<repositoryId>-<time> for restores, failover-<planId>-<time> for
 * failovers. Plan and repository ids are hex.
 */
export function jobOwner(jobId: string): { kind: "plan" | "repository"; id: string } | undefined {
  const m = /^(backup|restore|failover)-([0-9a-f]+)-\d{4}/.exec(jobId);
  if (!m) return undefined;
  return { kind: m[1] === "restore" ? "repository" : "plan", id: m[2] };
}

function describeScope(scope: TokenScope): string {
  const parts = [
    ...(scope.planIds?.length ? [`plans ${scope.planIds.join(", ")}`] : []),
    ...(scope.repositoryIds?.length ? [`repositories ${scope.repositoryIds.join(", ")}`] : []),
  ];
  return parts.join(" and ") || "nothing";
}
