import { createRoute, z } from "@hono/zod-openapi";
import { describe, expect, it } from "vitest";
import { access, json, router } from "./openapi.js";
import { PUBLIC } from "./permissions.js";

describe("router", () => {
  const responses = { 200: json(z.object({}), "ok") };

  it("refuses to register a route that declares no permission", () => {
    const undeclared = createRoute({ method: "get", path: "/undeclared", responses });
    expect(() => router().openapi(undeclared, (c) => c.json({}, 200))).toThrow(/GET \/undeclared declares no permission/);
  });

  it("refuses a route without an operationId, which the audit log records as the action", () => {
    const unnamed = createRoute({ method: "post", path: "/unnamed", responses, ...access("plans:write") });
    expect(() => router().openapi(unnamed, (c) => c.json({}, 200))).toThrow(/POST \/unnamed has no operationId/);
  });

  it("refuses a permission that api/permissions.ts does not define", () => {
    const unknown = createRoute({ method: "post", path: "/unknown", operationId: "unknown", responses, "x-cairn-permission": "plans:destroy" });
    expect(() => router().openapi(unknown, (c) => c.json({}, 200))).toThrow(/unknown permission plans:destroy/);
  });

  it("registers declared routes, documenting 403 on guarded ones", () => {
    const app = router()
      .openapi(createRoute({ method: "get", path: "/open", operationId: "open", responses, ...access(PUBLIC) }), (c) => c.json({}, 200))
      .openapi(createRoute({ method: "get", path: "/guarded", operationId: "guarded", responses, ...access("plans:read") }), (c) => c.json({}, 200));
    const doc = app.getOpenAPI31Document({ openapi: "3.1.0", info: { title: "t", version: "1" } });
    expect(doc.paths!["/open"].get).toMatchObject({ security: [], "x-cairn-permission": "public" });
    expect(doc.paths!["/guarded"].get).toMatchObject({ security: [{ bearer: [] }, { session: [] }], "x-cairn-permission": "plans:read" });
    expect(Object.keys(doc.paths!["/guarded"].get!.responses!)).toContain("403");
  });
});
