import * as path from "node:path";
import { DefaultLogger, Runtime } from "@temporalio/worker";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiServer } from "../api/server.js";
import { apiClient } from "./api-client.js";
import { tempDir } from "./helpers.js";
import { testPolicy } from "./policy-fixtures.js";
import { startStack, type Stack } from "./stack.js";
import { arbitraryFor, type Schema } from "./openapi-arbitrary.js";

interface Operation {
  operationId: string;
  parameters?: { name: string; in: "path" | "query" | "header"; schema: Schema; required?: boolean }[];
  requestBody?: { content: Record<string, { schema: Schema }> };
}

/**
 * The same cases on every run, so a red build is a bug and not bad luck; set
 * CAIRN_FUZZ_SEED to a number to replay a failure (fast-check prints its seed), or
 * to "random" to explore new cases.
 */
const SEED = process.env.CAIRN_FUZZ_SEED === "random" ? Date.now() % 2 ** 31 : Number(process.env.CAIRN_FUZZ_SEED ?? 20261130);

/** A generated value as it would appear in a URL. */
function asText(v: unknown): string {
  return typeof v === "string" ? v : JSON.stringify(v);
}

/** Requests over all routes: about this many in all, spread evenly (about a minute on 2 busy cores). */
const TOTAL_RUNS = 2000;
/** Fewer for routes whose work grows with what the others wrote: verifying walks the whole audit log. */
const FEWER: Record<string, number> = { verifyAuditLog: 20 };

/**
 * Every route of /openapi.json with property-based path parameters, queries,
 * bodies and headers (fast-check), against the API over HTTP with a Temporal dev
 * server and a worker: no answer is a 5xx, the server stays up, and the audit log
 * it wrote meanwhile still verifies.
 */
describe("fuzzing every route", () => {
  const tmp = tempDir("cairn-fuzz-");
  const dataDir = path.join(tmp.dir, "data");
  let stack: Stack;
  let api: ApiServer;
  let viewerToken: string;

  beforeAll(async () => {
    Runtime.install({ logger: new DefaultLogger("WARN") });
    // Bad tokens are part of the fuzz: a lockout would turn the rest into 429s and hide what the routes do.
    stack = await startStack({ policy: testPolicy(tmp.dir, dataDir), dataDir, api: { lockout: { maxFailures: Number.MAX_SAFE_INTEGER, windowMs: 1 } } });
    api = stack.api;
    ({ token: viewerToken } = await apiClient(api).ok<{ token: string }>("POST", "/v1/tokens", { name: "fuzz-viewer", role: "viewer" }));
  });

  afterAll(async () => {
    await stack?.close();
    tmp.cleanup();
  });

  it("answers thousands of generated requests without a 5xx, and stays up with an intact audit log", async () => {
    const doc = (await (await fetch(`${api.url}/openapi.json`)).json()) as { paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, Schema> } };
    const operations = Object.entries(doc.paths).flatMap(([route, ops]) => Object.entries(ops).map(([method, op]) => ({ route, method: method.toUpperCase(), op })));
    const runsEach = Math.ceil(TOTAL_RUNS / operations.length);
    const components = doc.components.schemas;
    const seen = new Map<number, number>();
    let sent = 0;

    for (const { route, method, op } of operations) {
      const pathParams = (op.parameters ?? []).filter((p) => p.in === "path");
      const queryParams = (op.parameters ?? []).filter((p) => p.in === "query");
      const bodySchema = op.requestBody?.content["application/json"]?.schema;
      const request = fc.record({
        params: fc.tuple(...pathParams.map((p) => arbitraryFor(p.schema, components))),
        query: fc.tuple(...queryParams.map((p) => fc.option(arbitraryFor(p.schema, components), { nil: undefined }))),
        extraQuery: fc.option(fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 16 }), { maxKeys: 2 }), { nil: undefined }),
        body: bodySchema ? arbitraryFor(bodySchema, components) : fc.option(fc.jsonValue({ maxDepth: 1 }), { nil: undefined, freq: 4 }),
        rawBody: fc.option(fc.oneof(fc.string({ maxLength: 200 }), fc.constantFrom("{", '{"a":', "[]", "null", '"x"', "{}}")), { nil: undefined, freq: 5 }),
        contentType: fc.constantFrom("application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded", undefined, "application/json", "application/json"),
        auth: fc.constantFrom("admin", "admin", "admin", "admin", "viewer", "garbage", "none", "malformed"),
      });
      await fc.assert(
        fc.asyncProperty(request, async (r) => {
          let url = route.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(asText(r.params[pathParams.findIndex((p) => p.name === name)] ?? "x").replace(/[\ud800-\udfff]/g, "\ufffd")));
          const search = new URLSearchParams();
          queryParams.forEach((p, i) => {
            const v = r.query[i];
            if (v !== undefined) search.append(p.name, asText(v));
          });
          for (const [k, v] of Object.entries(r.extraQuery ?? {})) search.append(k, v);
          if ([...search].length) url += `?${search}`;
          const headers: Record<string, string> = {};
          if (r.auth === "admin") headers.Authorization = `Bearer ${api.token}`;
          else if (r.auth === "viewer") headers.Authorization = `Bearer ${viewerToken}`;
          else if (r.auth === "garbage") headers.Authorization = "Bearer cairn_not-a-real-token";
          else if (r.auth === "malformed") headers.Authorization = "Basic Zm9vOmJhcg==";
          const hasBody = method !== "GET" && (r.rawBody !== undefined || r.body !== undefined);
          if (hasBody && r.contentType) headers["Content-Type"] = r.contentType;
          const res = await fetch(api.url + url, { method, headers, body: hasBody ? (r.rawBody ?? JSON.stringify(r.body)) : undefined });
          const text = await res.text();
          sent++;
          seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
          if (res.status >= 500) throw new Error(`${method} ${url} -> ${res.status}: ${text}`);
          if (res.status >= 400) expect(res.headers.get("content-type"), `${method} ${url}`).toBe("application/problem+json");
        }),
        { numRuns: FEWER[op.operationId] ?? runsEach, seed: SEED, endOnFailure: true },
      );
    }

    expect(sent).toBeGreaterThanOrEqual(TOTAL_RUNS - runsEach);
    // The generated requests reached the handlers, not only the validators and the token check.
    expect([...seen.keys()].filter((s) => s < 300).length).toBeGreaterThan(0);
    expect(seen.get(400)).toBeGreaterThan(0);
    expect(seen.get(401)).toBeGreaterThan(0);
    expect(seen.get(403)).toBeGreaterThan(0);
    expect(seen.get(404)).toBeGreaterThan(0);

    expect((await fetch(`${api.url}/healthz`)).status).toBe(200);
    const verdict = await apiClient(api).ok<{ ok: boolean; events: number }>("POST", "/v1/audit/verify");
    expect(verdict.ok).toBe(true);
    expect(verdict.events).toBeGreaterThan(TOTAL_RUNS / 10);
  }, 300_000);
});
