import * as path from "node:path";
import { Client, Connection } from "@temporalio/client";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openCatalog, type OpenCatalog } from "../db/client.js";
import { plans, repositories } from "../db/schema.js";
import { SecretBox } from "../engine/secret-box.js";
import { tempDir } from "../test/helpers.js";
import { seedCatalog } from "../test/catalog-template.js";
import { inProcessWorkers, testPolicy } from "../test/policy-fixtures.js";
import { createApp } from "./app.js";
import { backupInput } from "./schedules.js";

// Nothing listens on port 1: plans without a schedule need no Temporal.
const ADMIN = "test-admin-token";
const scratch = tempDir("cairn-api-secondaries-");
let catalog: OpenCatalog;
let connection: Connection;
let app: ReturnType<typeof createApp>;

beforeAll(async () => {
  await seedCatalog(scratch.dir);
  catalog = await openCatalog({ dataDir: scratch.dir });
  connection = Connection.lazy({ address: "127.0.0.1:1" });
  const secretBox = new SecretBox(SecretBox.generateKey());
  const policy = testPolicy(scratch.dir, path.join(scratch.dir, "data"), { CAIRN_SOURCE_ROOTS: "/srv" });
  app = createApp({ catalog: catalog.db, temporal: new Client({ connection }), secretBox, adminToken: ADMIN, policy, workers: inProcessWorkers(secretBox, policy) });
});
afterAll(async () => {
  await connection?.close();
  await catalog?.close();
  scratch.cleanup();
});

function call(method: string, url: string, body?: unknown) {
  const headers: Record<string, string> = { Authorization: `Bearer ${ADMIN}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  return app.request(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

async function registerRepository(name: string): Promise<string> {
  const res = await call("POST", "/v1/repositories", { name, url: path.join(scratch.dir, name), password: "correct horse battery staple" });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

async function problem(res: Response, status: number): Promise<{ detail: string; errors?: { path: string }[] }> {
  expect(res.status).toBe(status);
  return (await res.json()) as { detail: string; errors?: { path: string }[] };
}

describe("plans with secondary repositories", () => {
  it("keep the secondaries they name, refuse unknown ones and the plan's own repository, and hand them to the backup workflow", async () => {
    const primary = await registerRepository("primary");
    const offsite = await registerRepository("offsite");
    const source = { type: "files", paths: ["/srv/docs"] };

    const unknown = await problem(await call("POST", "/v1/plans", { name: "docs", repositoryId: primary, source, secondaryRepositoryIds: [offsite, "nope"] }), 404);
    expect(unknown.errors?.map((e) => e.path)).toEqual(["secondaryRepositoryIds.1"]);
    const itself = await problem(await call("POST", "/v1/plans", { name: "docs", repositoryId: primary, source, secondaryRepositoryIds: [primary] }), 400);
    expect(itself.detail).toMatch(/name another repository/);
    await problem(await call("POST", "/v1/plans", { name: "docs", repositoryId: primary, source, secondaryRepositoryIds: [offsite, offsite] }), 400);

    const created = await call("POST", "/v1/plans", { name: "docs", repositoryId: primary, source, secondaryRepositoryIds: [offsite] });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    expect(await (await call("GET", `/v1/plans/${id}`)).json()).toMatchObject({ repositoryId: primary, secondaryRepositoryIds: [offsite] });

    // What a schedule or "run now" starts: the secondary travels with its password still sealed.
    const [plan] = await catalog.db.select().from(plans).where(eq(plans.id, id));
    const [primaryRow] = await catalog.db.select().from(repositories).where(eq(repositories.id, primary));
    const [offsiteRow] = await catalog.db.select().from(repositories).where(eq(repositories.id, offsite));
    expect(backupInput(plan, primaryRow, [offsiteRow]).secondaries).toEqual([{ id: offsite, url: offsiteRow.url, sealedPassword: offsiteRow.sealedPassword }]);
    expect(backupInput(plan, primaryRow).secondaries).toBeUndefined();

    // Moving the plan onto its secondary would make the copy pointless.
    await problem(await call("PATCH", `/v1/plans/${id}`, { repositoryId: offsite }), 400);
    await problem(await call("PATCH", `/v1/plans/${id}`, { secondaryRepositoryIds: ["nope"] }), 404);
    expect(await (await call("GET", `/v1/plans/${id}`)).json()).toMatchObject({ secondaryRepositoryIds: [offsite] });
    expect(await (await call("PATCH", `/v1/plans/${id}`, { secondaryRepositoryIds: [] })).json()).toMatchObject({ secondaryRepositoryIds: [] });

    const withoutField = await call("POST", "/v1/plans", { name: "other", repositoryId: primary, source });
    const other = (await withoutField.json()) as { id: string };
    expect(await (await call("GET", `/v1/plans/${other.id}`)).json()).toMatchObject({ secondaryRepositoryIds: [] });
  });
});
