/** A plan's notification channels: sealed for the catalog and the workflows, shown without their secrets. */
import type { z } from "@hono/zod-openapi";
import type { SecretBox } from "../engine/secret-box.js";
import type { NotificationChannel } from "../workflows/messages.js";
import type { NotificationInput } from "./routes/plan-schemas.js";

export function sealNotifications(secretBox: SecretBox, input: z.infer<typeof NotificationInput>[]): NotificationChannel[] {
  return input.map((n) => {
    if (n.type === "webhook") return { type: "webhook", url: n.url, on: n.on, ...(n.secret ? { sealedSecret: secretBox.seal(n.secret) } : {}) };
    if (n.type === "slack") return { type: "slack", sealedUrl: secretBox.seal(n.url), host: new URL(n.url).host, on: n.on };
    return { type: "email", to: n.to, on: n.on };
  });
}

export function showNotifications(stored: NotificationChannel[] | null) {
  return (stored ?? []).map((n) =>
    n.type === "webhook" ? { type: n.type, on: n.on, url: n.url, signed: n.sealedSecret !== undefined } : n.type === "slack" ? { type: n.type, on: n.on, host: n.host } : { type: n.type, on: n.on, to: n.to },
  );
}
