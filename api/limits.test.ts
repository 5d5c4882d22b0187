import { Client, Connection } from "@temporalio/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openCatalog, type OpenCatalog } from "../db/client.js";
import { SecretBox } from "../engine/secret-box.js";
import { tempDir } from "../test/helpers.js";
import { seedCatalog } from "../test/catalog-template.js";
import { inProcessWorkers, testPolicy } from "../test/policy-fixtures.js";
import { createApp } from "./app.js";

interface Schema {
  type?: string | string[];
  $ref?: string;
  enum?: unknown[];
  const?: unknown;
  format?: string;
  maxLength?: number;
  maxItems?: number;
  maxProperties?: number;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
}

/** Every string, list and map reachable in `schema` that has no cap, by JSON path. */
function uncapped(schema: Schema, at: string, components: Record<string, Schema>, seen = new Set<string>()): string[] {
  if (schema.$ref) {
    const name = schema.$ref.split("/").pop()!;
    if (seen.has(name)) return [];
    return uncapped(components[name], at, components, new Set([...seen, name]));
  }
  const found: string[] = [];
  for (const branch of [...(schema.anyOf ?? []), ...(schema.oneOf ?? []), ...(schema.allOf ?? [])]) found.push(...uncapped(branch, at, components, seen));
  const types = [schema.type].flat();
  if (types.includes("string") && schema.maxLength === undefined && schema.enum === undefined && schema.const === undefined && schema.format !== "date-time") found.push(`${at}: string without maxLength`);
  if (types.includes("array")) {
    if (schema.maxItems === undefined) found.push(`${at}: array without maxItems`);
    if (schema.items) found.push(...uncapped(schema.items, `${at}[]`, components, seen));
  }
  for (const [name, property] of Object.entries(schema.properties ?? {})) found.push(...uncapped(property, `${at}.${name}`, components, seen));
  if (typeof schema.additionalProperties === "object") {
    if (schema.maxProperties === undefined) found.push(`${at}: map without maxProperties`);
    found.push(...uncapped(schema.additionalProperties, `${at}.*`, components, seen));
  }
  return found;
}

describe("input caps", () => {
  const scratch = tempDir("cairn-limits-");
  let catalog: OpenCatalog;
  let connection: Connection;
  let app: ReturnType<typeof createApp>;

  beforeAll(async () => {
    await seedCatalog(scratch.dir);
    catalog = await openCatalog({ dataDir: scratch.dir });
    connection = Connection.lazy({ address: "127.0.0.1:1" });
    const secretBox = new SecretBox(SecretBox.generateKey());
    const policy = testPolicy(scratch.dir, scratch.dir);
    app = createApp({ catalog: catalog.db, temporal: new Client({ connection }), secretBox, adminToken: "admin", policy, workers: inProcessWorkers(secretBox, policy) });
  });
  afterAll(async () => {
    await connection?.close();
    await catalog?.close();
    scratch.cleanup();
  });

  it("caps every string, list and map a route accepts, in its body, query and path", async () => {
    const doc = (await (await app.request("/openapi.json")).json()) as {
      paths: Record<string, Record<string, { parameters?: { name: string; in: string; schema: Schema }[]; requestBody?: { content: Record<string, { schema: Schema }> } }>>;
      components: { schemas: Record<string, Schema> };
    };
    const problems: string[] = [];
    let inputs = 0;
    for (const [route, operations] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(operations)) {
        const where = `${method.toUpperCase()} ${route}`;
        for (const p of op.parameters ?? []) {
          inputs++;
          problems.push(...uncapped(p.schema, `${where} ${p.in} ${p.name}`, doc.components.schemas));
        }
        for (const media of Object.values(op.requestBody?.content ?? {})) {
          inputs++;
          problems.push(...uncapped(media.schema, `${where} body`, doc.components.schemas));
        }
      }
    }
    expect(inputs).toBeGreaterThan(10);
    expect(problems).toEqual([]);
  });

  it("refuses a body whose declared length is over 1 MiB with 413, before reading it", async () => {
    const res = await app.request("/v1/plans", {
      method: "POST",
      headers: { Authorization: "Bearer admin", "Content-Type": "application/json", "Content-Length": String(2 * 1024 * 1024) },
      body: "{}",
    });
    expect(res.status).toBe(413);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    expect(((await res.json()) as { detail: string }).detail).toMatch(/larger than 1048576 bytes/);
  });
});
