import { randomBytes } from "node:crypto";
import { createRoute, z } from "@hono/zod-openapi";
import { and, eq, inArray, isNull } from "drizzle-orm";
import { apiTokens, plans, repositories } from "../../db/schema.js";
import type { AppDeps } from "../app.js";
import { ENV_ADMIN, hashToken, newToken } from "../auth.js";
import { ApiError } from "../errors.js";
import { access, IdParam, json, jsonBody, problems, router } from "../openapi.js";
import { byCreation, nextCursor, PageQuery } from "../pagination.js";
import { ROLE_NAMES } from "../permissions.js";

const creation = byCreation(apiTokens.createdAt, apiTokens.id);

const ids = (what: string) =>
  z
    .array(z.string().min(1).max(100))
    .min(1, `name at least one ${what} id, or leave the field out`)
    .max(100, `name at most 100 ${what} ids`)
    .refine((list) => new Set(list).size === list.length, `name each ${what} once`);

const Scope = z
  .strictObject({
    planIds: ids("plan").optional().openapi({ description: "Plans the token may read and run." }),
    repositoryIds: ids("repository").optional().openapi({ description: "Repositories whose snapshots, restores and plans the token may reach." }),
  })
  .refine((s) => s.planIds || s.repositoryIds, "a scope names planIds, repositoryIds or both; leave scope out for a token that reaches everything")
  .openapi("TokenScope", { description: "Limits the token to these plans and repositories (viewer and operator tokens only)." });

const TokenInput = z
  .strictObject({
    name: z.string().trim().min(1).max(100).openapi({ example: "nightly-report" }),
    role: z.enum(ROLE_NAMES).openapi({ description: "viewer: read plans, jobs, snapshots; operator: also run plans, cancel jobs, restore; admin: everything; auditor: audit log, security events, compliance only." }),
    expiresAt: z.iso
      .datetime({ offset: true, message: "give an ISO 8601 time such as 2030-01-31T00:00:00Z" })
      .refine((t) => Date.parse(t) > Date.now(), "give a time in the future; a token that is already expired is of no use")
      .optional()
      .openapi({ description: "After this time the token is refused. Leave it out for a token that never expires (compliance reports flag admin tokens without one)." }),
    scope: Scope.optional(),
  })
  .superRefine((input, ctx) => {
    if (input.scope && (input.role === "admin" || input.role === "auditor")) {
      ctx.addIssue({ code: "custom", path: ["scope"], message: `a scope limits viewer and operator tokens; an ${input.role} token reaches the whole platform, so leave scope out or choose another role` });
    }
  })
  .openapi("TokenInput");

const Token = z
  .object({
    id: z.string(),
    name: z.string(),
    role: z.enum(ROLE_NAMES),
    scope: Scope.nullable(),
    expiresAt: z.string().nullable(),
    lastUsedAt: z.string().nullable().openapi({ description: "Within a minute." }),
    revokedAt: z.string().nullable(),
    createdBy: z.string().nullable().openapi({ description: "The id of the token that created it." }),
    createdAt: z.string(),
  })
  .openapi("Token");

const create = createRoute({
  method: "post",
  path: "/tokens",
  operationId: "createToken",
  summary: "Create an API token; the answer holds the token itself, shown this once",
  tags: ["tokens"],
  ...access("tokens:manage"),
  request: { body: jsonBody(TokenInput) },
  responses: {
    201: json(z.object({ id: z.string(), token: z.string().openapi({ description: "Send it as Authorization: Bearer <token>. It is stored hashed and never shown again." }) }), "Created."),
    ...problems(400, 404, 415),
  },
});
const list = createRoute({
  method: "get",
  path: "/tokens",
  operationId: "listTokens",
  summary: "List API tokens (never their secret), with when each was last used",
  tags: ["tokens"],
  ...access("tokens:manage"),
  request: { query: PageQuery },
  responses: { 200: json(z.object({ tokens: z.array(Token), nextCursor }), "A page of tokens in creation order, revoked ones included."), ...problems(400) },
});
const revoke = createRoute({
  method: "delete",
  path: "/tokens/{id}",
  operationId: "revokeToken",
  summary: "Revoke a token: it is refused from the next request on",
  tags: ["tokens"],
  ...access("tokens:manage"),
  request: { params: IdParam },
  responses: { 204: { description: "Revoked." }, ...problems(404, 409) },
});

type Row = typeof apiTokens.$inferSelect;
const view = (t: Row) => ({
  id: t.id,
  name: t.name,
  role: t.role as (typeof ROLE_NAMES)[number],
  scope: t.scope ?? null,
  expiresAt: t.expiresAt?.toISOString() ?? null,
  lastUsedAt: t.lastUsedAt?.toISOString() ?? null,
  revokedAt: t.revokedAt?.toISOString() ?? null,
  createdBy: t.createdBy,
  createdAt: t.createdAt.toISOString(),
});

/** Token management (admin): tokens are stored as sha256 hashes, so the secret exists only in the creation answer. */
export function tokenRoutes(deps: AppDeps) {
  const { catalog } = deps;

  /** Each id of a scope must name a plan or repository that exists: a typo would give a token that reaches nothing. */
  const checkScopeIds = async (scope: { planIds?: string[]; repositoryIds?: string[] }) => {
    for (const [field, table, ids] of [
      ["planIds", plans, scope.planIds],
      ["repositoryIds", repositories, scope.repositoryIds],
    ] as const) {
      if (!ids) continue;
      const found = new Set((await catalog.select({ id: table.id }).from(table).where(inArray(table.id, ids))).map((r) => r.id));
      const missing = ids.map((id, i) => ({ id, i })).filter(({ id }) => !found.has(id));
      if (missing.length) {
        throw new ApiError(
          404,
          "Scope names unknown ids",
          `${missing.map((m) => m.id).join(", ")} ${missing.length === 1 ? "is" : "are"} not known; list them with GET /v1/${field === "planIds" ? "plans" : "repositories"}`,
          missing.map(({ i }) => ({ in: "body", path: `scope.${field}.${i}`, message: "no such id" })),
        );
      }
    }
  };

  return router()
    .openapi(create, async (c) => {
      const input = c.req.valid("json");
      if (input.scope) await checkScopeIds(input.scope);
      const id = randomBytes(8).toString("hex");
      const token = newToken();
      await catalog.insert(apiTokens).values({
        id,
        name: input.name,
        tokenHash: hashToken(token),
        role: input.role,
        scope: input.scope ?? null,
        expiresAt: input.expiresAt ? new Date(input.expiresAt) : null,
        createdBy: c.get("principal").tokenId,
      });
      return c.json({ id, token }, 201);
    })
    .openapi(list, async (c) => {
      const { limit, cursor } = c.req.valid("query");
      const rows = await catalog.select().from(apiTokens).where(creation.after(cursor)).orderBy(...creation.orderBy).limit(limit + 1);
      const page = creation.page(rows, limit);
      return c.json({ tokens: page.items.map(view), nextCursor: page.nextCursor }, 200);
    })
    .openapi(revoke, async (c) => {
      const { id } = c.req.valid("param");
      if (id === ENV_ADMIN.tokenId) {
        throw new ApiError(409, "Token set by the environment", "this admin token comes from CAIRN_API_TOKEN; remove the variable from the API's environment and restart it to revoke it");
      }
      const [row] = await catalog.select().from(apiTokens).where(eq(apiTokens.id, id));
      if (!row || row.revokedAt) throw ApiError.notFound("token", id, "list tokens with GET /v1/tokens");
      if (row.role === "admin" && !deps.adminToken) {
        const now = new Date();
        const admins = await catalog.select().from(apiTokens).where(and(eq(apiTokens.role, "admin"), isNull(apiTokens.revokedAt)));
        if (!admins.some((t) => t.id !== id && (!t.expiresAt || t.expiresAt > now))) {
          throw new ApiError(409, "Last admin token", `"${row.name}" is the last usable admin token; create another admin token first (POST /v1/tokens), or nobody could manage this server any more`);
        }
      }
      await catalog.update(apiTokens).set({ revokedAt: new Date() }).where(eq(apiTokens.id, id));
      return c.body(null, 204);
    });
}
