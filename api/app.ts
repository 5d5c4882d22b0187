import type { Client } from "@temporalio/client";
import type { Catalog } from "../db/client.js";
import type { SecretBox } from "../engine/secret-box.js";
import { bearerAuth } from "./auth.js";
import { ApiError, renderProblem } from "./errors.js";
import { router } from "./openapi.js";
import { healthRoutes } from "./routes/health.js";
import { jobRoutes } from "./routes/jobs.js";
import { planRoutes } from "./routes/plans.js";
import { repositoryRoutes } from "./routes/repositories.js";
import { restoreRoutes } from "./routes/restores.js";
import { snapshotRoutes } from "./routes/snapshots.js";

/** What the API needs from the outside; tests pass real ones (PGlite, a Temporal dev server). */
export interface AppDeps {
  catalog: Catalog;
  /** A Temporal client; a lazy connection is fine, routes that need Temporal answer 503 while it is down. */
  temporal: Client;
  secretBox: SecretBox;
  /** A token accepted as admin besides those in the catalog (CAIRN_API_TOKEN); kept in memory only. */
  adminToken?: string;
}

/** Builds the Cairn HTTP API: /healthz and /readyz open, /v1 behind a bearer token, /openapi.json describing it all. */
export function createApp(deps: AppDeps) {
  const app = router();
  app.onError(renderProblem);
  app.notFound((c) => renderProblem(new ApiError(404, "Not found", `there is no endpoint ${c.req.method} ${c.req.path}; the endpoints are listed in /openapi.json`), c));

  app.route("/", healthRoutes(deps));
  app.use("/v1/*", bearerAuth(deps.catalog, deps.adminToken));
  app.route("/v1", repositoryRoutes(deps));
  app.route("/v1", planRoutes(deps));
  app.route("/v1", jobRoutes(deps));
  app.route("/v1", snapshotRoutes(deps));
  app.route("/v1", restoreRoutes(deps));

  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", { type: "http", scheme: "bearer", description: "The admin token printed on first start, or CAIRN_API_TOKEN." });
  // The document describes the API, not its data, so clients may fetch it without a token.
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: { title: "Cairn API", version: "1", description: "Plans, jobs, snapshots and restores of Cairn backups. Errors are application/problem+json." },
  });
  return app;
}
