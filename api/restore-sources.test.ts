import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { Client, Connection } from "@temporalio/client";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openCatalog, type OpenCatalog } from "../db/client.js";
import { repositories } from "../db/schema.js";
import { SecretBox } from "../engine/secret-box.js";
import { PASSWORD, cairnOk, tempDir } from "../test/helpers.js";
import { seedCatalog } from "../test/catalog-template.js";
import { inProcessWorkers, testPolicy } from "../test/policy-fixtures.js";
import { createApp, type AppDeps } from "./app.js";
import { ApiError } from "./errors.js";
import { fallbackRepositories } from "./restore-sources.js";
import { repositoryTarget, type RepositoryRow } from "./schedules.js";

// Nothing listens on port 1: these checks happen before a restore reaches Temporal (worker requests run in this process).
const ADMIN = "test-admin-token";
const scratch = tempDir("cairn-api-restore-sources-");
let catalog: OpenCatalog;
let connection: Connection;
let deps: AppDeps;
let app: ReturnType<typeof createApp>;

beforeAll(async () => {
  await seedCatalog(scratch.dir);
  catalog = await openCatalog({ dataDir: scratch.dir });
  connection = Connection.lazy({ address: "127.0.0.1:1" });
  const secretBox = new SecretBox(SecretBox.generateKey());
  const policy = testPolicy(scratch.dir, path.join(scratch.dir, "data"), { CAIRN_SOURCE_ROOTS: `/srv:${scratch.dir}` });
  deps = { catalog: catalog.db, temporal: new Client({ connection }), secretBox, adminToken: ADMIN, policy, workers: inProcessWorkers(secretBox, policy) };
  app = createApp(deps);
});
afterAll(async () => {
  await connection?.close();
  await catalog?.close();
  scratch.cleanup();
});

function call(method: string, url: string, body: unknown) {
  return app.request(url, { method, headers: { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

async function register(name: string): Promise<RepositoryRow> {
  const res = await call("POST", "/v1/repositories", { name, url: path.join(scratch.dir, name), password: PASSWORD });
  expect(res.status).toBe(201);
  const { id } = (await res.json()) as { id: string };
  const [row] = await catalog.db.select().from(repositories).where(eq(repositories.id, id));
  return row;
}

async function problemOf(p: Promise<unknown>): Promise<ApiError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(ApiError);
  return err as ApiError;
}

describe("where a restore may be served from", () => {
  it("tries the repositories the request names, then the secondaries of the plans that back up into the repository", async () => {
    const primary = await register("primary");
    const offsite = await register("offsite");
    const extra = await register("extra");
    const plan = await call("POST", "/v1/plans", { name: "docs", repositoryId: primary.id, source: { type: "files", paths: ["/srv/docs"] }, secondaryRepositoryIds: [offsite.id] });
    expect(plan.status).toBe(201);

    expect((await fallbackRepositories(deps, primary)).map((r) => r.id)).toEqual([offsite.id]);
    expect((await fallbackRepositories(deps, primary, [extra.id])).map((r) => r.id)).toEqual([extra.id, offsite.id]);
    expect((await fallbackRepositories(deps, primary, [offsite.id])).map((r) => r.id)).toEqual([offsite.id]);
    // Nothing backs up into the secondary, so it has no fallback of its own.
    expect(await fallbackRepositories(deps, offsite)).toEqual([]);
    expect((await problemOf(fallbackRepositories(deps, primary, [primary.id]))).status).toBe(400);

    const unknown = await call("POST", "/v1/restores", { repositoryId: primary.id, snapshotId: "latest", target: path.join(scratch.dir, "r"), fallbackRepositoryIds: ["nope"] });
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { errors: { path: string }[] }).errors.map((e) => e.path)).toEqual(["fallbackRepositoryIds.0"]);
  });

  it("resolves the snapshot in the repository, or in the first fallback when the repository is gone, never past a wrong password", async () => {
    const primary = await register("p2");
    const offsite = await register("o2");
    const src = path.join(scratch.dir, "src");
    mkdirSync(src, { recursive: true });
    writeFileSync(path.join(src, "a.txt"), "some data\n");
    await cairnOk(["-r", primary.url, "backup", src]);
    await cairnOk(["-r", offsite.url, "copy", "--from-repo", primary.url], { env: { CAIRN_FROM_PASSWORD: PASSWORD } });

    const target = path.join(scratch.dir, "restored");
    const prepare = async (repo: RepositoryRow, fallbacks: RepositoryRow[], snapshotRef = "latest") => {
      const answer = await deps.workers.prepareRestore({ repository: repositoryTarget(repo), fallbacks: fallbacks.map(repositoryTarget), snapshotRef, target });
      if (!answer.ok) return answer.refusal;
      return answer.value;
    };
    const inPrimary = await prepare(primary, [offsite]);
    expect(inPrimary).toMatchObject({ resolvedIn: primary.id, targetInUse: false });
    const moved = `${primary.url}.unmounted`;
    renameSync(primary.url, moved);
    try {
      const inCopy = await prepare(primary, [offsite]);
      expect(inCopy).toMatchObject({ resolvedIn: offsite.id, snapshot: (inPrimary as { snapshot: unknown }).snapshot });
      expect((inCopy as { snapshotId: string }).snapshotId).not.toBe((inPrimary as { snapshotId: string }).snapshotId);
      // Without a fallback the refusal says what to check.
      expect(await prepare(primary, [])).toMatchObject({ reason: "repositoryMissing", message: expect.stringMatching(/check that its disk is mounted/) });
    } finally {
      renameSync(moved, primary.url);
    }
    const wrong = { ...primary, sealedPassword: deps.secretBox.seal("not the password") };
    expect(await prepare(wrong, [offsite])).toMatchObject({ reason: "wrongPassword" });
    expect(await prepare(primary, [offsite], "abcdef12")).toMatchObject({ reason: "snapshotNotFound", field: "snapshotId" });

    // Over HTTP: the same answers, as problems.
    const missing = await call("POST", "/v1/restores", { repositoryId: primary.id, snapshotId: "abcdef12", target });
    expect(missing.status).toBe(404);
    mkdirSync(target);
    writeFileSync(path.join(target, "mine.txt"), "mine\n");
    const busy = await call("POST", "/v1/restores", { repositoryId: primary.id, snapshotId: "latest", target });
    expect(busy.status).toBe(409);
    expect((await busy.json()) as object).toMatchObject({ title: "Target not empty", errors: [{ path: "overwrite" }], detail: expect.stringMatching(/overwrite "always".*"if-changed".*"never"/) });
  });
});
