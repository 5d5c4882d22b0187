import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { serve, type ServerType } from "@hono/node-server";
import { Client, Connection } from "@temporalio/client";
import { openCatalog } from "../db/client.js";
import { loadSecretBox } from "../engine/secret-box.js";
import { loadPolicy, type ExecutionPolicy } from "../policy/policy.js";
import { createApp } from "./app.js";
import { ensureAdminToken } from "./auth.js";
import type { LockoutOptions } from "./lockout.js";
import { ACTIVITY_ENV, DEFAULT_ACTIVITY_LIMITS, type ActivityLimits } from "./activity-watch.js";
import { DEFAULT_THRESHOLDS, type ComplianceThresholds } from "./compliance/evidence.js";
import { AuditTrail, DEFAULT_AUDIT, type AuditOptions } from "./audit.js";
import { loadAuditSigner } from "../db/audit-checkpoints.js";
import { CheckpointRepository } from "../db/audit-repository.js";
import { parseRepositoryUrl } from "../backends/url.js";
import { destinationRefusal, policyLookup } from "../policy/destinations.js";
import { JobRecorder } from "./recorder.js";
import { temporalWorkerRequests } from "./worker-requests.js";
import { WalAgeCache } from "./wal-age.js";

export interface ApiServerOptions {
  /** CAIRN_API_PORT, default 8080; 0 picks a free port. */
  port?: number;
  /** CAIRN_API_HOST, default 127.0.0.1 (set 0.0.0.0 to serve other machines). */
  host?: string;
  /** CAIRN_DATA_DIR, default .cairn/: the embedded catalog and the platform secret key. */
  dataDir?: string;
  /** DATABASE_URL: a PostgreSQL catalog instead of the embedded one. */
  databaseUrl?: string;
  /** TEMPORAL_ADDRESS, default localhost:7233. */
  temporalAddress?: string;
  /** TEMPORAL_NAMESPACE, default "default". */
  namespace?: string;
  /** CAIRN_API_TOKEN: an admin token to accept besides the catalog's. */
  adminToken?: string;
  /** Failed authentications that lock an address or token out (5 within 10 minutes). */
  lockout?: LockoutOptions;
  /** CAIRN_AUDIT_DIR, default <dataDir>/audit: the pinned audit signing keys and the signed checkpoints. */
  auditDir?: string;
  /**
   * CAIRN_AUDIT_REPOSITORY: a location (repository URL syntax) that gets a write-once
   * copy of every signed checkpoint (S3: Object Lock), with credentials from
   * `auditRepositoryEnv` (default the process environment).
   */
  auditRepository?: string;
  auditRepositoryEnv?: Record<string, string | undefined>;
  /** How recent compliance evidence must be (CAIRN_COMPLIANCE_VERIFY_DAYS, default 30; CAIRN_COMPLIANCE_KEY_ROTATION_DAYS, default 365). */
  compliance?: Partial<ComplianceThresholds>;
  /** Per-token volume limits (CAIRN_ALERT_* and CAIRN_BLOCK_SUSPICIOUS; see activity-watch.ts). */
  activityLimits?: Partial<ActivityLimits>;
  /** When the audit chain's head is signed (CAIRN_AUDIT_CHECKPOINT_EVENTS, default 100; CAIRN_AUDIT_CHECKPOINT_SECONDS, default 300). */
  audit?: Partial<AuditOptions>;
  /** The execution policy; read from CAIRN_POLICY_FILE and the CAIRN_* policy variables when absent. */
  policy?: ExecutionPolicy;
  /** CAIRN_API_URL: the address workers reach this API at, for downloads (default: where it listens, 0.0.0.0 as 127.0.0.1). */
  apiUrl?: string;
  /** CAIRN_WEB_DIR: the built dashboard served at / (default dist/web, written by npm run build). */
  webDir?: string;
  /** CAIRN_TEMPORAL_UI_URL: the Temporal Web UI (http://127.0.0.1:8233 for the dev server), so each job links to its workflow there. */
  temporalUiUrl?: string;
  /** How often finished jobs are looked for and written to the catalog (CAIRN_HISTORY_INTERVAL_MS, default 2000). */
  historyIntervalMs?: number;
  /** How often overdue plans and quotas are checked for alerts (CAIRN_ALERT_INTERVAL_MS, default 60000). */
  alertIntervalMs?: number;
  /** How often a worker is asked for each physical PostgreSQL plan's newest archived WAL, for /metrics (CAIRN_WAL_AGE_REFRESH_SECONDS, default 60). */
  walAgeRefreshSeconds?: number;
}

export interface ApiServer {
  url: string;
  /** The admin token, when this start generated it (the first start without CAIRN_API_TOKEN). */
  token?: string;
  close(): Promise<void>;
}

/** Opens the catalog (migrating it), connects to Temporal lazily and serves the API. */
export async function startApiServer(options: ApiServerOptions = {}): Promise<ApiServer> {
  const env = process.env;
  const dataDir = path.resolve(options.dataDir ?? env.CAIRN_DATA_DIR ?? ".cairn");
  const adminToken = options.adminToken ?? (env.CAIRN_API_TOKEN || undefined);
  const policy = options.policy ?? loadPolicy({ dataDir });
  const catalog = await openCatalog({ dataDir, databaseUrl: options.databaseUrl ?? (env.DATABASE_URL || undefined) });
  const secretBox = await loadSecretBox(dataDir);
  const token = adminToken ? undefined : await ensureAdminToken(catalog.db);
  const auditDir = path.resolve(options.auditDir ?? env.CAIRN_AUDIT_DIR ?? path.join(dataDir, "audit"));
  const auditRepositoryUrl = options.auditRepository ?? (env.CAIRN_AUDIT_REPOSITORY || undefined);
  const auditRepository = auditRepositoryUrl ? await openCheckpointRepository(auditRepositoryUrl, options.auditRepositoryEnv ?? env, policy) : undefined;
  const audit = new AuditTrail(catalog.db, await loadAuditSigner(catalog.db, secretBox, auditDir, auditRepository), {
    checkpointEvery: options.audit?.checkpointEvery ?? positive(env.CAIRN_AUDIT_CHECKPOINT_EVENTS, "CAIRN_AUDIT_CHECKPOINT_EVENTS") ?? DEFAULT_AUDIT.checkpointEvery,
    checkpointIntervalMs:
      options.audit?.checkpointIntervalMs ?? (positive(env.CAIRN_AUDIT_CHECKPOINT_SECONDS, "CAIRN_AUDIT_CHECKPOINT_SECONDS") ?? DEFAULT_AUDIT.checkpointIntervalMs / 1000) * 1000,
  });
  // Lazy: the API starts (and /readyz says why it is not ready) while Temporal is still coming up.
  const connection = Connection.lazy({ address: options.temporalAddress ?? env.TEMPORAL_ADDRESS ?? "localhost:7233" });
  const temporal = new Client({ connection, namespace: options.namespace ?? env.TEMPORAL_NAMESPACE ?? "default" });
  const tampered = await audit.checkNewestCheckpoint();
  if (tampered) console.error(`cairn api: ${tampered}`);
  const activityLimits: ActivityLimits = { ...DEFAULT_ACTIVITY_LIMITS, block: env.CAIRN_BLOCK_SUSPICIOUS === "1" || env.CAIRN_BLOCK_SUSPICIOUS === "true" };
  for (const [field, name] of Object.entries(ACTIVITY_ENV) as [keyof typeof ACTIVITY_ENV, string][]) activityLimits[field] = positive(env[name], name) ?? activityLimits[field];
  const compliance: ComplianceThresholds = {
    verificationDays: options.compliance?.verificationDays ?? days(env.CAIRN_COMPLIANCE_VERIFY_DAYS, "CAIRN_COMPLIANCE_VERIFY_DAYS") ?? DEFAULT_THRESHOLDS.verificationDays,
    keyRotationDays: options.compliance?.keyRotationDays ?? days(env.CAIRN_COMPLIANCE_KEY_ROTATION_DAYS, "CAIRN_COMPLIANCE_KEY_ROTATION_DAYS") ?? DEFAULT_THRESHOLDS.keyRotationDays,
  };
  let workerUploadUrl = (options.apiUrl ?? (env.CAIRN_API_URL || undefined))?.replace(/\/+$/, "");
  const workers = temporalWorkerRequests(temporal);
  const walAge = new WalAgeCache(catalog.db, workers, {
    intervalMs: (options.walAgeRefreshSeconds ?? positive(env.CAIRN_WAL_AGE_REFRESH_SECONDS, "CAIRN_WAL_AGE_REFRESH_SECONDS") ?? 60) * 1000,
    warn: (message) => process.stderr.write(`cairn api: ${message}\n`),
  });
  const app = createApp({
    workerUploadUrl: () => workerUploadUrl,
    catalog: catalog.db,
    temporal,
    secretBox,
    adminToken,
    lockout: options.lockout,
    audit,
    compliance,
    activityLimits: { ...activityLimits, ...options.activityLimits },
    policy,
    workers,
    walAge,
    webDir: options.webDir ?? (env.CAIRN_WEB_DIR || undefined),
    temporalUiUrl: temporalUi(options.temporalUiUrl ?? (env.CAIRN_TEMPORAL_UI_URL || undefined)),
  });

  const recorder = new JobRecorder(catalog.db, temporal, {
    intervalMs: options.historyIntervalMs ?? positive(env.CAIRN_HISTORY_INTERVAL_MS, "CAIRN_HISTORY_INTERVAL_MS") ?? 2000,
    warn: (message) => process.stderr.write(`cairn api: ${message}\n`),
    periodicAlertsMs: options.alertIntervalMs ?? positive(env.CAIRN_ALERT_INTERVAL_MS, "CAIRN_ALERT_INTERVAL_MS") ?? 60_000,
  });

  const host = options.host ?? env.CAIRN_API_HOST ?? "127.0.0.1";
  const port = options.port ?? Number(env.CAIRN_API_PORT ?? 8080);
  let server: ServerType;
  const listening = await new Promise<number>((resolve, reject) => {
    server = serve({ fetch: app.fetch, port, hostname: host }, (info) => resolve(info.port));
    server.once("error", reject);
  }).catch(async (err) => {
    await audit.close();
    await catalog.close();
    await connection.close();
    throw new Error(`cannot listen on ${host}:${port}: ${(err as Error).message}; choose another port with CAIRN_API_PORT`, { cause: err });
  });

  recorder.start();
  walAge.start();
  workerUploadUrl ??= `http://${host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "[::1]" : host.includes(":") ? `[${host}]` : host}:${listening}`;
  return {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${listening}`,
    token,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive connections would hold close() open until they time out.
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
      await recorder.stop();
      walAge.stop();
      await connection.close();
      await audit.close();
      await catalog.close();
    },
  };
}

/**
 * The checkpoint repository, opened at start so a mistake stops the start with
 * what to change: a remote location must pass the execution policy (kinds, hosts,
 * addresses, also at connect time); a local one is the deployer's own, like CAIRN_AUDIT_DIR.
 */
async function openCheckpointRepository(url: string, env: Record<string, string | undefined>, policy: ExecutionPolicy): Promise<CheckpointRepository> {
  const where = `CAIRN_AUDIT_REPOSITORY (${url})`;
  try {
    if (parseRepositoryUrl(url).type !== "local") {
      const refusal = await destinationRefusal(policy, url, env, { realPaths: false });
      if (refusal) throw refusal;
    }
    return await CheckpointRepository.open(url, env, { lookup: policyLookup(policy) });
  } catch (err) {
    throw new Error(`${where}: ${(err as Error).message}`, { cause: err });
  }
}

/** The Temporal Web UI's base URL, checked at start: an http(s) URL, or the start stops naming the variable. */
function temporalUi(value: string | undefined): string | undefined {
  if (!value) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (!url || !["http:", "https:"].includes(url.protocol)) throw new Error(`CAIRN_TEMPORAL_UI_URL must be the Temporal Web UI's http:// or https:// URL, such as http://127.0.0.1:8233, not "${value}"`);
  return value.replace(/\/+$/, "");
}

/** A positive number of days (fractions allowed) from the environment, or undefined when unset. */
function days(value: string | undefined, name: string): number | undefined {
  if (value === undefined || value === "") return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number of days, not "${value}"`);
  return n;
}

/** A positive whole number from the environment, or undefined when unset; anything else stops the start with the variable named. */
function positive(value: string | undefined, name: string): number | undefined {
  if (value === undefined || value === "") return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${name} must be a positive whole number, not "${value}"`);
  return n;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  startApiServer().then(
    (api) => {
      process.stdout.write(`Cairn API listening on ${api.url} (OpenAPI document at ${api.url}/openapi.json)\n`);
      if (api.token) process.stdout.write(`admin token (shown once, stored hashed): ${api.token}\n`);
      const stop = () => void api.close().then(() => process.exit(0));
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    },
    (err) => {
      process.stderr.write(`cairn api: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
