ALTER TABLE "repositories" ADD COLUMN "environment_credentials" boolean DEFAULT false NOT NULL;--> statement-breakpoint
-- Repositories registered before credentials could be stored relied on the environment; they keep doing so.
UPDATE "repositories" SET "environment_credentials" = true WHERE "sealed_credentials" IS NULL;