import * as path from "node:path";
import { z } from "@hono/zod-openapi";
import { PathPatterns } from "../../engine/pathmatch.js";
import { validatePolicy } from "../../engine/retention.js";
import { blackoutProblem, WEEK } from "../blackouts.js";
import { cronProblem, isTimeZone } from "../cron.js";
import { ALERT_KINDS } from "../../workflows/messages.js";
import { LIMITS } from "../limits.js";
import { parseMysqlUrl } from "../../sources/mysql/connection.js";
import { parseConnectionUrl } from "../../sources/postgres/connection.js";

const absolutePath = z
  .string()
  .min(1)
  .max(LIMITS.path)
  .refine((p) => path.isAbsolute(p), "use an absolute path: the worker that reads it may run in another directory");

/** Include or exclude patterns, read as the engine reads them (engine/pathmatch.ts): one it cannot read is refused now, not at the next run. */
export const PathPatternList = z
  .array(
    z
      .string()
      .min(1)
      .max(LIMITS.pattern)
      .superRefine((pattern, ctx) => {
        try {
          new PathPatterns([pattern]);
        } catch (err) {
          ctx.addIssue({ code: "custom", message: (err as Error).message });
        }
      }),
  )
  .max(LIMITS.patterns);

const FileSource = z
  .strictObject({
    type: z.literal("files"),
    paths: z.array(absolutePath).min(1, "give at least one path to back up").max(LIMITS.paths, `give at most ${LIMITS.paths} paths; back up a common parent instead`).openapi({ example: ["/var/www"] }),
    exclude: PathPatternList.optional().openapi({
      example: ["*.tmp", "/var/www/cache/*"],
      description: "Paths to leave out. A pattern with a / matches the absolute path from the root; one without matches any name.",
    }),
  })
  .openapi("FileSource");

/**
 * A PostgreSQL connection URL as the execution policy can judge it (parseConnectionUrl), without
 * a password: the URL is shown back and recorded in the audit log, only the password field is sealed.
 */
export function checkConnectionUrl(url: string, ctx: z.RefinementCtx): void {
  try {
    if (parseConnectionUrl(url).password !== undefined) {
      ctx.addIssue({ code: "custom", message: "give the password in the password field, not in the URL: the URL is shown back and recorded in the audit log, the password field is sealed" });
    }
  } catch (err) {
    ctx.addIssue({ code: "custom", message: (err as Error).message });
  }
}

const connectionUrl = z
  .string()
  .max(LIMITS.url)
  .superRefine(checkConnectionUrl)
  .openapi({
    example: "postgresql://backup@db.internal:5432/postgres",
    description: "The server, as libpq reads a URL, without a password (sslmode, connect_timeout and application_name are the only parameters accepted).",
  });
const connectionPassword = z.string().min(1).max(LIMITS.secret).optional().openapi({ description: "The user's password. Stored sealed with the platform secret key; never returned." });
const pgNames = (what: string) =>
  z
    .array(z.string().min(1).max(200))
    .max(100, `give at most 100 ${what}`)
    .optional();

const PostgresLogicalSource = z
  .strictObject({
    type: z.literal("postgres"),
    mode: z.literal("logical"),
    url: connectionUrl,
    password: connectionPassword,
    databases: pgNames("databases").openapi({ description: "Databases to dump (default: every database that accepts connections). Roles and tablespaces (pg_dumpall --globals-only) always come along." }),
    includeTables: pgNames("table patterns").openapi({ description: "Only these tables (pg_dump -t patterns)." }),
    excludeTables: pgNames("table patterns").openapi({ description: "Leave these tables out (pg_dump -T patterns)." }),
    includeSchemas: pgNames("schema patterns").openapi({ description: "Only these schemas (pg_dump -n patterns)." }),
  })
  .openapi("PostgresLogicalSource");

const PostgresPhysicalSource = z
  .strictObject({
    type: z.literal("postgres"),
    mode: z.literal("physical"),
    url: connectionUrl.openapi({ description: "The server; the user needs the REPLICATION attribute (pg_basebackup). Point-in-time recovery also needs its archive_command to push WAL into the plan's repository (cairn pg wal-push)." }),
    password: connectionPassword,
  })
  .openapi("PostgresPhysicalSource");

const mysqlUrl = z
  .string()
  .max(LIMITS.url)
  .superRefine((url, ctx) => {
    try {
      if (parseMysqlUrl(url).password !== undefined) {
        ctx.addIssue({ code: "custom", message: "give the password in the password field, not in the URL: the URL is shown back and recorded in the audit log, the password field is sealed" });
      }
    } catch (err) {
      ctx.addIssue({ code: "custom", message: (err as Error).message });
    }
  })
  .openapi({ example: "mysql://backup@db.internal:3306", description: "The server, as mysql://user@host:port (or mariadb://), without a password or parameters." });

const MysqlLogicalSource = z
  .strictObject({
    type: z.literal("mysql"),
    mode: z.literal("logical"),
    url: mysqlUrl,
    password: connectionPassword,
    databases: pgNames("databases").openapi({ description: "Databases to dump (default: every database but information_schema, performance_schema, sys and mysql)." }),
    includeTables: pgNames("tables").openapi({ description: "Only these tables, as TABLE (in every dumped database) or DATABASE.TABLE." }),
  })
  .openapi("MysqlLogicalSource");

const MysqlPhysicalSource = z
  .strictObject({
    type: z.literal("mysql"),
    mode: z.literal("physical"),
    url: mysqlUrl.openapi({ description: "The server; mariadb-backup reads its data files, so the plan's workers must run on the database host with read access to the data directory." }),
    password: connectionPassword,
    binlogs: z.boolean().optional().openapi({
      description:
        "Each run also archives the server's binary logs (FLUSH BINARY LOGS, then every closed log the repository lacks), so POST /v1/recoveries/mysql can recover to any time up to the last run. The server must write a binary log (log_bin); the user needs REPLICATION SLAVE, BINLOG MONITOR and RELOAD. Without it, archive them with cairn mysql binlog-archive.",
    }),
  })
  .openapi("MysqlPhysicalSource");

// Discriminated by type, then mode, so a wrong field is named as precisely as for one schema.
const Source = z.discriminatedUnion("type", [
  FileSource,
  z.discriminatedUnion("mode", [PostgresLogicalSource, PostgresPhysicalSource]),
  z.discriminatedUnion("mode", [MysqlLogicalSource, MysqlPhysicalSource]),
]);
export type SourceInput = z.infer<typeof Source>;

/** A plan's source as the API returns it: a database password is never shown, only whether one is stored. */
const SourceView = z.discriminatedUnion("type", [
  FileSource,
  z.discriminatedUnion("mode", [
    PostgresLogicalSource.omit({ password: true }).extend({ passwordStored: z.boolean() }).openapi("PostgresLogicalSourceView"),
    PostgresPhysicalSource.omit({ password: true }).extend({ passwordStored: z.boolean() }).openapi("PostgresPhysicalSourceView"),
  ]),
  z.discriminatedUnion("mode", [
    MysqlLogicalSource.omit({ password: true }).extend({ passwordStored: z.boolean() }).openapi("MysqlLogicalSourceView"),
    MysqlPhysicalSource.omit({ password: true }).extend({ passwordStored: z.boolean() }).openapi("MysqlPhysicalSourceView"),
  ]),
]);

const OVERLAPS = ["skip", "buffer_one", "buffer_all", "cancel_other", "terminate_other", "allow_all"] as const;

const Blackout = z
  .strictObject({
    days: z.array(z.enum(WEEK)).min(1).max(7).optional().openapi({ description: "Days the window starts on; every day when absent." }),
    from: z.string().max(5).openapi({ example: "08:00", description: "Start, HH:MM (inclusive)." }),
    to: z.string().max(5).openapi({ example: "18:00", description: "End, HH:MM (exclusive); earlier than from for a window past midnight, 24:00 for the end of the day." }),
  })
  .superRefine((window, ctx) => {
    const problem = blackoutProblem(window);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  })
  .openapi("BlackoutWindow");

export const Schedule = z
  .strictObject({
    cron: z
      .string()
      .max(200)
      .superRefine((cron, ctx) => {
        const problem = cronProblem(cron);
        if (problem) ctx.addIssue({ code: "custom", message: problem });
      })
      .openapi({ example: "0 3 * * *", description: "Five fields (minute hour day-of-month month day-of-week) or @hourly/@daily/@weekly/@monthly/@yearly." }),
    timezone: z
      .string()
      .max(100)
      .default("UTC")
      .refine(isTimeZone, "use an IANA time zone name such as Europe/Paris, America/New_York or UTC")
      .openapi({ example: "Europe/Paris" }),
    overlap: z.enum(OVERLAPS).optional().openapi({
      description:
        "What a run that comes due while the plan's last run is still going does: skip it (the default), buffer_one (run it after, at most one waiting), buffer_all, cancel_other (cancel the running one), terminate_other, or allow_all (run both at once).",
    }),
    blackouts: z
      .array(Blackout)
      .max(20)
      .optional()
      .openapi({ description: "Times of the week, in the schedule's time zone, in which no scheduled run starts (a run due then is skipped, not postponed)." }),
  })
  .openapi("Schedule");

/** A plan's recovery drills: a schedule (optional: drills can be run by hand) and, for a database, the query the restored copy must answer. */
const Drill = z
  .strictObject({
    cron: Schedule.shape.cron.optional().openapi({ example: "0 5 * * 0", description: "When drills run (five fields or @daily...); without it drills run only by hand (POST /v1/plans/{id}/drills)." }),
    timezone: Schedule.shape.timezone,
    checkSql: z.string().trim().min(1).max(10_000).optional().openapi({ example: "SELECT count(*) FROM orders", description: "PostgreSQL plans: run on the restored copy as the plan's user; it must succeed (default SELECT 1)." }),
  })
  .openapi("Drill");

const count = z.number().int("use a whole number").min(0).optional();

export const Retention = z
  .strictObject({
    keepLast: count,
    keepHourly: count,
    keepDaily: count,
    keepWeekly: count,
    keepMonthly: count,
    keepYearly: count,
    keepWithin: z
      .string()
      .max(50)
      .refine((within) => {
        try {
          validatePolicy({ keepWithin: within });
          return true;
        } catch {
          return false;
        }
      }, "use years, months, days and hours such as 30d, 6m, 1y6m or 2d12h (m means months)")
      .optional()
      .openapi({ example: "30d" }),
  })
  .refine((r) => Object.values(r).some((v) => v !== undefined && v !== 0), "a retention policy needs at least one non-zero rule, otherwise every snapshot would be removed; for example keepDaily: 7")
  .openapi("Retention");

const secondaryRepositoryIds = z
  .array(z.string().min(1).max(LIMITS.id))
  .max(8, "give at most 8 secondary repositories")
  .refine((ids) => new Set(ids).size === ids.length, "each secondary repository may be named once")
  .openapi({ description: "Repositories that get a copy of each new snapshot after it is verified; one that cannot be reached makes a warning on the job, not a failure.", example: ["3f9a0c1d2e4b5a69"] });

const verifySamplePercent = z.number().min(0).max(100).openapi({ description: "Share of the new snapshot's packs read back after each backup (0-100).", example: 10 });

const Queue = z
  .strictObject({
    priority: z.enum(["high", "normal", "low"]).default("normal").openapi({ description: "Waiting work of a high-priority plan is served before normal, normal before low (Temporal task priority)." }),
    maxAttempts: z.number().int().min(1).max(100).optional().openapi({ description: "Attempts of each step in all (1 = no retry); each step's own policy when absent." }),
    initialIntervalSeconds: z.number().int().min(1).max(3600).optional().openapi({ description: "Wait before a step's first retry." }),
    backoffCoefficient: z.number().min(1).max(10).optional().openapi({ description: "How much each wait grows over the one before." }),
    timeoutMinutes: z.number().int().min(1).max(7 * 24 * 60).optional().openapi({ description: "The job fails as timed out when not finished this long after it started (waiting included)." }),
  })
  .openapi("PlanQueue");

const NOTIFY_ON = ["success", "failure", ...ALERT_KINDS] as const;
const On = z
  .array(z.enum(NOTIFY_ON))
  .min(1)
  .max(NOTIFY_ON.length)
  .default(["failure"])
  .openapi({
    description: `Which job outcomes (success, failure) and which alert kinds (${ALERT_KINDS.join(", ")}) are sent; an alert is sent when it opens and when it resolves (default: failures only).`,
  });
const httpUrl = (what: string) =>
  z
    .string()
    .max(LIMITS.path)
    .refine((u) => {
      try {
        return ["http:", "https:"].includes(new URL(u).protocol);
      } catch {
        return false;
      }
    }, `give the ${what} as an http:// or https:// URL`);

/** Where a plan's outcomes are sent. Secrets (a webhook's signing secret, a Slack URL) are stored sealed and never shown again. */
export const NotificationInput = z
  .discriminatedUnion("type", [
    z.strictObject({
      type: z.literal("webhook"),
      url: httpUrl("webhook"),
      secret: z.string().min(16, "use a signing secret of at least 16 characters (openssl rand -hex 32)").max(200).optional().openapi({ description: "Signs each body: header X-Cairn-Signature: t=<unix>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">." }),
      on: On,
    }),
    z.strictObject({ type: z.literal("slack"), url: httpUrl("Slack incoming webhook").openapi({ description: "The incoming-webhook URL (a secret: stored sealed, shown only by host)." }), on: On }),
    z.strictObject({ type: z.literal("email"), to: z.array(z.email("give each recipient as an email address").max(254)).min(1).max(10), on: On }),
  ])
  .openapi("NotificationInput");

const Notification = z
  .object({
    type: z.enum(["webhook", "slack", "email"]),
    on: z.array(z.enum(NOTIFY_ON)),
    url: z.string().optional().openapi({ description: "Webhooks only." }),
    signed: z.boolean().optional().openapi({ description: "Webhooks: whether bodies are signed." }),
    host: z.string().optional().openapi({ description: "Slack: the webhook's host (the URL itself is a secret)." }),
    to: z.array(z.string()).optional(),
  })
  .openapi("Notification");

const rpoMinutes = z
  .number()
  .int()
  .min(5)
  .max(366 * 24 * 60)
  .openapi({ description: "Recovery point objective: a backup_overdue alert opens when the last successful backup is older. Default: the longest wait between scheduled runs plus a twelfth of it (at least 30 min), e.g. 26 h for a daily plan; none for a plan without a schedule.", example: 1560 });

export const PlanInput = z
  .strictObject({
    name: z.string().trim().min(1).max(100).openapi({ example: "www" }),
    repositoryId: z.string().min(1).max(LIMITS.id),
    source: Source,
    schedule: Schedule.optional(),
    retention: Retention.optional(),
    verifySamplePercent: verifySamplePercent.optional(),
    secondaryRepositoryIds: secondaryRepositoryIds.optional(),
    queue: Queue.optional(),
    notifications: z.array(NotificationInput).max(5).optional(),
    rpoMinutes: rpoMinutes.optional(),
    drill: Drill.optional(),
  })
  .openapi("PlanInput");

export const PlanPatch = z
  .strictObject({
    name: z.string().trim().min(1).max(100).optional(),
    repositoryId: z.string().min(1).max(LIMITS.id).optional(),
    source: Source.optional(),
    schedule: Schedule.nullable().optional().openapi({ description: "null removes the schedule (and its Temporal Schedule)." }),
    retention: Retention.nullable().optional().openapi({ description: "null removes the retention policy." }),
    verifySamplePercent: verifySamplePercent.nullable().optional(),
    secondaryRepositoryIds: secondaryRepositoryIds.optional().openapi({ description: "Replaces the list; [] removes every secondary." }),
    queue: Queue.nullable().optional().openapi({ description: "null returns to normal priority and each step's own retries." }),
    notifications: z.array(NotificationInput).max(5).optional().openapi({ description: "Replaces the list (secrets must be given again); [] sends nothing." }),
    rpoMinutes: rpoMinutes.nullable().optional().openapi({ description: "null returns to the RPO derived from the schedule." }),
    drill: Drill.nullable().optional().openapi({ description: "null removes the drill settings and their schedule." }),
  })
  .openapi("PlanPatch");

export const Plan = z
  .object({
    id: z.string(),
    name: z.string(),
    repositoryId: z.string(),
    source: SourceView,
    schedule: Schedule.nullable(),
    retention: Retention.nullable(),
    verifySamplePercent: z.number().nullable(),
    secondaryRepositoryIds: z.array(z.string()),
    queue: Queue.nullable(),
    notifications: z.array(Notification),
    rpoMinutes: z.number().nullable().openapi({ description: "The plan's own RPO; null when derived from the schedule (see effectiveRpoMinutes)." }),
    effectiveRpoMinutes: z.number().nullable().openapi({ description: "The RPO the backup_overdue alert uses (null: none, the plan has neither an RPO nor an active schedule)." }),
    paused: z.boolean(),
    scheduleId: z.string().nullable().openapi({ description: "The Temporal Schedule id, when the plan has a schedule." }),
    drill: Drill.nullable(),
    drillScheduleId: z.string().nullable().openapi({ description: "The Temporal Schedule id of its recovery drills, when they have a cron." }),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("Plan");
