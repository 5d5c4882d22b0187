import { randomBytes } from "node:crypto";
import { createRoute, z } from "@hono/zod-openapi";
import { and, eq, inArray, or } from "drizzle-orm";
import { CREDENTIAL_VARIABLES, credentialProblems, unsealCredentials, WORKER_FILE_VARIABLES } from "../../backends/credentials.js";
import { plans, repositories } from "../../db/schema.js";
import { latestUsage } from "../alerts.js";
import type { AppDeps } from "../app.js";
import { repositoriesInScope } from "../access.js";
import { ApiError, isUniqueViolation } from "../errors.js";
import { LIMITS } from "../limits.js";
import { byCreation, nextCursor, PageQuery } from "../pagination.js";
import { access, IdParam, json, jsonBody, problems, router } from "../openapi.js";
import { checkRepositoryLocation, mayUseEnvironmentCredentials } from "../policy.js";
import { repositoryUrl } from "../repository-url.js";
import { repositoryTarget, syncSchedule } from "../schedules.js";
import { answered } from "../worker-requests.js";

const MaxConcurrentJobs = z
  .number()
  .int("use a whole number of jobs")
  .min(1, "at least 1 job must be able to run; leave the field out (or null) for no limit")
  .max(1000)
  .openapi({
    example: 1,
    description:
      "Jobs (backups, restores, checks, prunes, copies, verifications) that may work on this repository at once; the others wait for a slot, shown as phase `waiting` in GET /v1/jobs/{id}. No limit of its own when absent.",
  });

const QuotaBytes = z
  .number()
  .int()
  .min(1)
  .max(Number.MAX_SAFE_INTEGER)
  .openapi({
    description:
      "The most the repository's packs may take, in bytes. A storage_nearly_full alert opens at 80%; a backup that would pass it (the repository's size plus the backup's estimate) fails before uploading anything.",
    example: 500 * 2 ** 30,
  });

const RepositoryInput = z
  .strictObject({
    name: z.string().trim().min(1).max(100).openapi({ example: "main" }),
    url: z
      .string()
      .min(1)
      .max(LIMITS.url)
      .refine((url) => repositoryUrl(url) !== undefined, "give an absolute local path such as /srv/backups/repo, or s3:https://host/bucket/prefix, sftp:user@host:port/path, azure:container/prefix, gs:bucket/prefix")
      .openapi({
        example: "/srv/backups/repo",
        description: "An absolute local path (or local:/path) under the repository roots, or an s3:, sftp:, azure:, gs: location the execution policy allows. Created when nothing is there yet.",
      }),
    password: z.string().min(1, "an empty password protects nothing; choose a password").max(LIMITS.secret).openapi({ description: "Stored sealed with the platform secret key; never returned." }),
    credentials: z
      .record(z.string().max(100), z.string().min(1, "an empty value is no credential; leave the variable out").max(LIMITS.credential))
      .refine((vars) => Object.keys(vars).length <= 20, "give at most 20 variables")
      .optional()
      .openapi({
        example: { AWS_ACCESS_KEY_ID: "AKIA...", AWS_SECRET_ACCESS_KEY: "..." },
        maxProperties: 20,
        description:
          "Environment variables the destination's backend reads; the only credentials used unless useEnvironmentCredentials: " +
          Object.entries(CREDENTIAL_VARIABLES)
            .filter(([, names]) => names.length > 0)
            .map(([type, names]) => `${type}: ${names.join(", ")}`)
            .join("; ") +
          `. CAIRN_SFTP_KEY and CAIRN_GCS_KEY are the keys themselves; ${WORKER_FILE_VARIABLES.join(" and ")} name files on the workers and need useEnvironmentCredentials. ` +
          "Stored sealed with the platform secret key; only the names are ever returned.",
      }),
    quotaBytes: QuotaBytes.optional(),
    maxConcurrentJobs: MaxConcurrentJobs.optional(),
    useEnvironmentCredentials: z.boolean().optional().openapi({
      description:
        "Let the workers use their own credentials for this repository (their environment, ~/.aws, instance roles, ~/.ssh keys) besides `credentials`. Admins only; without it a repository uses only the credentials it was given.",
    }),
  })
  .superRefine((input, ctx) => {
    const url = repositoryUrl(input.url);
    if (!url || !input.credentials) return;
    for (const { variable, message } of credentialProblems(url, input.credentials, input.useEnvironmentCredentials === true)) {
      ctx.addIssue({ code: "custom", path: ["credentials", variable], message });
    }
  })
  .openapi("RepositoryInput");

const Repository = z
  .object({
    id: z.string(),
    name: z.string(),
    url: z.string(),
    credentials: z.array(z.string()).openapi({ description: "Names of the stored credential variables; their values are never returned." }),
    useEnvironmentCredentials: z.boolean().openapi({ description: "Whether the workers may use their own credentials for it." }),
    quotaBytes: z.number().nullable().openapi({ description: "The quota in bytes; null: none." }),
    maxConcurrentJobs: z.number().nullable().openapi({ description: "Jobs that may work on it at once; null: no limit of its own." }),
    usage: z
      .object({ bytes: z.number(), at: z.string() })
      .nullable()
      .openapi({ description: "The repository's size (its packs) as the last backup into it measured it; null before the first." }),
    createdAt: z.string(),
  })
  .openapi("Repository");

const RepositoryPatch = z
  .strictObject({
    quotaBytes: QuotaBytes.nullable().optional().openapi({ description: "The new quota in bytes; null removes it." }),
    maxConcurrentJobs: MaxConcurrentJobs.nullable().optional().openapi({ description: "The new limit of jobs working at once; null removes it." }),
  })
  .refine((p) => p.quotaBytes !== undefined || p.maxConcurrentJobs !== undefined, "give quotaBytes or maxConcurrentJobs (or both) to change")
  .openapi("RepositoryPatch");

const Created = z.object({ id: z.string(), created: z.boolean().openapi({ description: "True when the repository was initialised by this call." }) }).openapi("RepositoryCreated");

const create = createRoute({
  method: "post",
  path: "/repositories",
  operationId: "createRepository",
  summary: "Register a repository, creating it when the location is empty",
  tags: ["repositories"],
  ...access("repositories:write"),
  request: { body: jsonBody(RepositoryInput) },
  responses: { 201: json(Created, "Registered."), ...problems(400, 403, 409, 415, 422, 503) },
});

const list = createRoute({
  method: "get",
  path: "/repositories",
  operationId: "listRepositories",
  summary: "List repositories in registration order, a page at a time",
  tags: ["repositories"],
  ...access("repositories:read"),
  request: { query: PageQuery },
  responses: { 200: json(z.object({ repositories: z.array(Repository), nextCursor }), "A page of registered repositories (those of the token's scope)."), ...problems(400) },
});

const get = createRoute({
  method: "get",
  path: "/repositories/{id}",
  operationId: "getRepository",
  summary: "One repository",
  tags: ["repositories"],
  ...access("repositories:read", { resource: "repository", in: "param", field: "id" }),
  request: { params: IdParam },
  responses: { 200: json(Repository, "The repository."), ...problems(404) },
});

const patch = createRoute({
  method: "patch",
  path: "/repositories/{id}",
  operationId: "updateRepository",
  summary: "Change a repository's quota or its limit of jobs working at once",
  tags: ["repositories"],
  ...access("repositories:write", { resource: "repository", in: "param", field: "id" }),
  request: { params: IdParam, body: jsonBody(RepositoryPatch) },
  responses: { 200: json(Repository, "The repository as changed; the schedules of the plans writing into it carry the new quota and limit."), ...problems(400, 404, 415) },
});

const creation = byCreation(repositories.createdAt, repositories.id);

type Row = typeof repositories.$inferSelect;
export function repositoryRoutes(deps: AppDeps) {
  const { catalog, secretBox } = deps;
  const view = (r: Row, usage: Map<string, { bytes: number; at: Date }>) => {
    const used = usage.get(r.id);
    return {
      id: r.id,
      name: r.name,
      url: r.url,
      credentials: Object.keys(unsealCredentials(secretBox, r.sealedCredentials)).sort(),
      useEnvironmentCredentials: r.environmentCredentials,
      quotaBytes: r.quotaBytes,
      maxConcurrentJobs: r.maxConcurrentJobs,
      usage: used ? { bytes: used.bytes, at: used.at.toISOString() } : null,
      createdAt: r.createdAt.toISOString(),
    };
  };
  return router()
    .openapi(create, async (c) => {
      const input = c.req.valid("json");
      const url = repositoryUrl(input.url)!;
      const [clash] = await catalog.select().from(repositories).where(or(eq(repositories.name, input.name), eq(repositories.url, url)));
      if (clash) {
        const field = clash.name === input.name ? "name" : "url";
        throw new ApiError(409, "Repository already registered", `a repository with this ${field} is already registered (id ${clash.id}); use it, or choose another ${field}`);
      }
      const environment = input.useEnvironmentCredentials === true;
      if (environment && !mayUseEnvironmentCredentials(c)) {
        throw new ApiError(403, "Admins only", "only an admin may let a repository use the workers' own credentials; give the repository its credentials instead, or ask an admin", [
          { in: "body", path: "useEnvironmentCredentials", message: "admins only" },
        ]);
      }
      const credentials = input.credentials ?? {};
      await checkRepositoryLocation(deps.policy, url, credentials, environment);
      const row: Row = {
        id: randomBytes(8).toString("hex"),
        name: input.name,
        url,
        sealedPassword: secretBox.seal(input.password),
        sealedCredentials: Object.keys(credentials).length > 0 ? secretBox.seal(JSON.stringify(credentials)) : null,
        environmentCredentials: environment,
        quotaBytes: input.quotaBytes ?? null,
        maxConcurrentJobs: input.maxConcurrentJobs ?? null,
        createdAt: new Date(),
      };
      // A worker creates or opens it: the API holds no repository open and needs no way to the destination.
      const { created } = answered(await deps.workers.registerRepository({ repository: repositoryTarget(row) }));
      const { id } = row;
      await catalog
        .insert(repositories)
        .values(row)
        .catch((err) => Promise.reject(isUniqueViolation(err) ? new ApiError(409, "Repository already registered", "another request registered this name or location a moment ago; list them with GET /v1/repositories") : err));
      return c.json({ id, created }, 201);
    })
    .openapi(list, async (c) => {
      const { limit, cursor } = c.req.valid("query");
      const scope = c.get("principal").scope;
      const rows = await catalog
        .select()
        .from(repositories)
        .where(and(creation.after(cursor), scope ? repositoriesInScope(scope) : undefined))
        .orderBy(...creation.orderBy)
        .limit(limit + 1);
      const page = creation.page(rows, limit);
      const usage = await latestUsage(catalog, page.items.map((r) => r.id));
      return c.json({ repositories: page.items.map((r) => view(r, usage)), nextCursor: page.nextCursor }, 200);
    })
    .openapi(get, async (c) => {
      const row = await findRepository(deps, c.req.valid("param").id);
      return c.json(view(row, await latestUsage(catalog, [row.id])), 200);
    })
    .openapi(patch, async (c) => {
      const before = await findRepository(deps, c.req.valid("param").id);
      const { quotaBytes, maxConcurrentJobs } = c.req.valid("json");
      const [after] = await catalog
        .update(repositories)
        .set({ ...(quotaBytes !== undefined ? { quotaBytes } : {}), ...(maxConcurrentJobs !== undefined ? { maxConcurrentJobs } : {}) })
        .where(eq(repositories.id, before.id))
        .returning();
      // Scheduled runs carry the quota and the limit in their input: each schedule of a plan writing here is brought up to date.
      try {
        for (const plan of await catalog.select().from(plans).where(eq(plans.repositoryId, after.id))) {
          if (!plan.schedule) continue;
          const rows = plan.secondaryRepositoryIds.length ? await catalog.select().from(repositories).where(inArray(repositories.id, plan.secondaryRepositoryIds)) : [];
          const secondaries = plan.secondaryRepositoryIds.flatMap((id) => rows.filter((r) => r.id === id));
          await syncSchedule(deps.temporal, plan, plan, after, secondaries);
        }
      } catch (err) {
        await catalog.update(repositories).set({ quotaBytes: before.quotaBytes, maxConcurrentJobs: before.maxConcurrentJobs }).where(eq(repositories.id, before.id));
        throw err;
      }
      return c.json(view(after, await latestUsage(catalog, [after.id])), 200);
    });
}

/** The catalog row of a repository, or a 404 that says where to look (naming the body `field` that referred to it). */
export async function findRepository(deps: AppDeps, id: string, field?: string): Promise<Row> {
  const [row] = await deps.catalog.select().from(repositories).where(eq(repositories.id, id));
  if (row) return row;
  const { title, message } = ApiError.notFound("repository", id, "list repositories with GET /v1/repositories, or register one with POST /v1/repositories");
  throw new ApiError(404, title, message, field ? [{ in: "body", path: field, message: "no such repository" }] : undefined);
}
