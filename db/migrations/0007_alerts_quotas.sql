CREATE TABLE "alerts" (
	"id" text PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"severity" text NOT NULL,
	"state" text DEFAULT 'open' NOT NULL,
	"plan_id" text,
	"repository_id" text,
	"title" text NOT NULL,
	"detail" text NOT NULL,
	"dedupe_key" text NOT NULL,
	"occurrences" integer DEFAULT 1 NOT NULL,
	"opened_at" timestamp with time zone NOT NULL,
	"last_seen_at" timestamp with time zone NOT NULL,
	"acknowledged_at" timestamp with time zone,
	"acknowledged_by" text,
	"resolved_at" timestamp with time zone,
	"resolution" text,
	"notified_at" timestamp with time zone,
	"resolved_notified_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "repository_usage" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"repository_id" text NOT NULL,
	"at" timestamp with time zone NOT NULL,
	"bytes" bigint NOT NULL,
	"snapshots" integer,
	"job_id" text
);
--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "alerts_evaluated_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "plans" ADD COLUMN "rpo_minutes" integer;--> statement-breakpoint
ALTER TABLE "repositories" ADD COLUMN "quota_bytes" bigint;--> statement-breakpoint
ALTER TABLE "repository_usage" ADD CONSTRAINT "repository_usage_repository_id_repositories_id_fk" FOREIGN KEY ("repository_id") REFERENCES "public"."repositories"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "alerts_dedupe_key_unresolved_idx" ON "alerts" USING btree ("dedupe_key") WHERE state <> 'resolved';--> statement-breakpoint
CREATE INDEX "alerts_state_idx" ON "alerts" USING btree ("state","opened_at");--> statement-breakpoint
CREATE INDEX "repository_usage_repository_at_idx" ON "repository_usage" USING btree ("repository_id","at");--> statement-breakpoint
-- Jobs finished before alerts existed are not evaluated: no storm of alerts for old failures.
UPDATE "jobs" SET "alerts_evaluated_at" = "finished_at" WHERE "finished_at" IS NOT NULL;--> statement-breakpoint
-- The usage history starts with the repository sizes the recorded backups reported.
INSERT INTO "repository_usage" ("repository_id", "at", "bytes", "snapshots", "job_id")
SELECT p."repository_id", j."finished_at", (j."result"->'repositoryStats'->>'packBytes')::bigint, (j."result"->'repositoryStats'->>'snapshots')::integer, j."id"
FROM "jobs" j JOIN "plans" p ON p."id" = j."plan_id"
WHERE j."kind" = 'backup' AND j."status" = 'completed' AND j."finished_at" IS NOT NULL AND j."result"->'repositoryStats'->>'packBytes' IS NOT NULL;
