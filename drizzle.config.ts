import { defineConfig } from "drizzle-kit";

/** `npx drizzle-kit generate` writes a new migration under db/migrations after a change to db/schema.ts. */
export default defineConfig({
  dialect: "postgresql",
  schema: "./db/schema.ts",
  out: "./db/migrations",
});
