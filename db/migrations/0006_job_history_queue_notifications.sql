ALTER TABLE "jobs" ADD COLUMN "steps" jsonb;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "log" jsonb;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "attempts" integer;--> statement-breakpoint
ALTER TABLE "plans" ADD COLUMN "queue" jsonb;--> statement-breakpoint
ALTER TABLE "plans" ADD COLUMN "notifications" jsonb;