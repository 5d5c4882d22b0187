import type { Client } from "@temporalio/client";
import type { Catalog } from "../db/client.js";
import type { SecretBox } from "../engine/secret-box.js";
import { randomUUID } from "node:crypto";
import { bodyLimit } from "hono/body-limit";
import { ActivityWatch, DEFAULT_ACTIVITY_LIMITS, type ActivityLimits } from "./activity-watch.js";
import { auditRequests, AuditTrail } from "./audit.js";
import { DownloadChannels, uploadRoutes } from "./downloads.js";
import type { ExecutionPolicy } from "../policy/policy.js";
import { bearerAuth } from "./auth.js";
import { sourceAddress } from "./context.js";
import { ApiError, renderProblem } from "./errors.js";
import { LIMITS } from "./limits.js";
import { DEFAULT_LOCKOUT, FailedLogins, type LockoutOptions } from "./lockout.js";
import { router } from "./openapi.js";
import { alertRoutes } from "./routes/alerts.js";
import { analyticsRoutes } from "./routes/analytics.js";
import { auditRoutes } from "./routes/audit.js";
import { complianceRoutes } from "./routes/compliance.js";
import { drillRoutes } from "./routes/drills.js";
import { failoverRoutes } from "./routes/failovers.js";
import type { ComplianceThresholds } from "./compliance/evidence.js";
import { healthRoutes } from "./routes/health.js";
import { jobRoutes } from "./routes/jobs.js";
import { metricsRoutes } from "./routes/metrics.js";
import { planRoutes } from "./routes/plans.js";
import { policyRoutes } from "./routes/policy.js";
import { schedulePreviewRoutes } from "./routes/schedule-preview.js";
import { recoveryRoutes } from "./routes/recoveries.js";
import { mysqlRoutes } from "./routes/mysql.js";
import { repositoryRoutes } from "./routes/repositories.js";
import { restoreRoutes } from "./routes/restores.js";
import { maintenanceRoutes } from "./routes/maintenance.js";
import { sessionRoutes } from "./routes/session.js";
import { CSRF_HEADER, DEFAULT_SESSIONS, SESSION_COOKIE, Sessions, type SessionOptions } from "./sessions.js";
import { securityRoutes } from "./routes/security.js";
import { snapshotRoutes } from "./routes/snapshots.js";
import { standbyRoutes } from "./routes/standbys.js";
import { binlogArchiverRoutes } from "./routes/binlog-archivers.js";
import { tokenRoutes } from "./routes/tokens.js";
import { workerRoutes } from "./routes/workers.js";
import { raiseSecurityEvent } from "./security-events.js";
import type { WorkerRequests } from "./worker-requests.js";
import type { WalAgeCache } from "./wal-age.js";
import { defaultWebDir, webRoutes } from "./web.js";

/** What the API needs from the outside; tests pass real ones (PGlite, a Temporal dev server). */
export interface AppDeps {
  catalog: Catalog;
  /** A Temporal client; a lazy connection is fine, routes that need Temporal answer 503 while it is down. */
  temporal: Client;
  secretBox: SecretBox;
  /** A token accepted as admin besides those in the catalog (CAIRN_API_TOKEN); kept in memory only. */
  adminToken?: string;
  /** Failed authentications that lock an address or a token out, and for how long (5 in 10 minutes). */
  lockout?: LockoutOptions;
  /** The audit log with its checkpoint signer (server.ts makes it); without one the chain is kept unsigned. */
  audit?: AuditTrail;
  /** How recent compliance evidence must be (CAIRN_COMPLIANCE_VERIFY_DAYS, CAIRN_COMPLIANCE_KEY_ROTATION_DAYS). */
  compliance?: ComplianceThresholds;
  /** Per-token restores, downloads and reads an hour past which a security event is raised (and, with block, the token refused). */
  activityLimits?: ActivityLimits;
  /** What plans may read, restores write and repositories reach: the API refuses what it refuses before asking a worker. */
  policy: ExecutionPolicy;
  /** Where repository work runs: workers reached through Temporal (temporalWorkerRequests). */
  workers: WorkerRequests;
  /** Each physical PostgreSQL plan's newest archived WAL, refreshed by server.ts for /metrics; absent: no WAL metrics. */
  walAge?: WalAgeCache;
  /** How long a dashboard session lasts unused and at most (30 minutes, 8 hours). */
  sessions?: Partial<SessionOptions>;
  /**
   * The address workers reach this API at (CAIRN_API_URL, else where the server
   * listens): downloads are streamed there by a worker. Without one, downloads answer 503.
   */
  workerUploadUrl?: () => string | undefined;
  /** The built dashboard (index.html, assets/), served at /; default dist/web of this checkout. */
  webDir?: string;
  /** The Temporal Web UI's base URL (CAIRN_TEMPORAL_UI_URL): jobs link to their workflow there. */
  temporalUiUrl?: string;
}

/** Builds the Cairn HTTP API: /healthz and /readyz open, /v1 behind a bearer token, /openapi.json describing it all, the dashboard at /. */
export function createApp(deps: AppDeps) {
  const app = router();
  app.onError(renderProblem);
  app.notFound((c) => renderProblem(new ApiError(404, "Not found", `there is no endpoint ${c.req.method} ${c.req.path}; the endpoints are listed in /openapi.json`), c));

  const audit = deps.audit ?? new AuditTrail(deps.catalog, undefined);
  const activity = new ActivityWatch(deps.activityLimits ?? DEFAULT_ACTIVITY_LIMITS);
  app.use("*", async (c, next) => {
    c.set("deps", deps);
    c.set("audit", audit);
    c.set("activity", activity);
    c.set("requestId", randomUUID());
    c.header("X-Request-Id", c.get("requestId"));
    await next();
  });
  const failedLogins = new FailedLogins(deps.lockout ?? DEFAULT_LOCKOUT, (key, failures, c) =>
    raiseSecurityEvent(deps.catalog, audit, { kind: "auth-lockout", source: sourceAddress(c), blocked: true, details: { locked: key.split(":")[0], failures } }, c.get("requestId")),
  );

  app.route("/", healthRoutes(deps));
  // Workers stream downloads here, authenticated by each upload's one-time secret (they hold no API token).
  const downloads = new DownloadChannels();
  app.route("/", uploadRoutes(downloads));
  app.route("/", webRoutes(deps.webDir ?? defaultWebDir()));
  // /metrics is served like /v1: audited refusals, a bearer token, the route's permission.
  const auth = bearerAuth(deps.catalog, failedLogins, deps.adminToken, new Sessions({ ...DEFAULT_SESSIONS, ...deps.sessions }));
  app.use("/v1/*", auditRequests());
  app.use("/v1/*", auth);
  app.use("/metrics", auditRequests());
  app.use("/metrics", auth);
  app.route("/", metricsRoutes(deps));
  // Past the limit the body is not read any further (a declared Content-Length is refused before reading at all).
  app.use(
    "/v1/*",
    bodyLimit({
      maxSize: LIMITS.bodyBytes,
      onError: () => {
        throw new ApiError(413, "Request body too large", `the request body is larger than ${LIMITS.bodyBytes} bytes; no Cairn request needs that much: check what is being sent`);
      },
    }),
  );
  app.route("/v1", sessionRoutes());
  app.route("/v1", repositoryRoutes(deps));
  app.route("/v1", planRoutes(deps));
  app.route("/v1", schedulePreviewRoutes(deps));
  app.route("/v1", jobRoutes(deps));
  app.route("/v1", snapshotRoutes(deps, downloads));
  app.route("/v1", restoreRoutes(deps));
  app.route("/v1", maintenanceRoutes(deps));
  app.route("/v1", recoveryRoutes(deps));
  app.route("/v1", mysqlRoutes(deps));
  app.route("/v1", standbyRoutes(deps));
  app.route("/v1", binlogArchiverRoutes(deps));
  app.route("/v1", drillRoutes(deps));
  app.route("/v1", failoverRoutes(deps));
  app.route("/v1", tokenRoutes(deps));
  app.route("/v1", securityRoutes(deps));
  app.route("/v1", auditRoutes(deps));
  app.route("/v1", complianceRoutes(deps, deps.compliance));
  app.route("/v1", analyticsRoutes(deps));
  app.route("/v1", alertRoutes(deps));
  app.route("/v1", policyRoutes(deps));
  app.route("/v1", workerRoutes(deps));

  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", { type: "http", scheme: "bearer", description: "A token from POST /v1/tokens, the admin token printed on first start, or CAIRN_API_TOKEN. Each operation's x-cairn-permission names the permission its token's role must hold." });
  app.openAPIRegistry.registerComponent("securitySchemes", "session", {
    type: "apiKey",
    in: "cookie",
    name: SESSION_COOKIE,
    description: `The dashboard's session cookie (POST /v1/session exchanges a token for it), accepted wherever the bearer token is; changes made with it must carry the header ${CSRF_HEADER}: 1 and come from the dashboard's own origin.`,
  });
  // The document describes the API, not its data, so clients may fetch it without a token.
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: { title: "Cairn API", version: "1", description: "Plans, jobs, snapshots and restores of Cairn backups. Errors are application/problem+json." },
  });
  return app;
}
