CREATE TABLE "repository_facts" (
	"repository_id" text PRIMARY KEY NOT NULL,
	"facts" jsonb NOT NULL,
	"reported_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
ALTER TABLE "repository_facts" ADD CONSTRAINT "repository_facts_repository_id_repositories_id_fk" FOREIGN KEY ("repository_id") REFERENCES "public"."repositories"("id") ON DELETE cascade ON UPDATE no action;