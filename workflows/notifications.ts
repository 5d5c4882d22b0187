import { proxyActivities } from "@temporalio/workflow";
import type { CairnActivities } from "../activities/index.js";
import type { SendNotificationInput, SendNotificationResult } from "../activities/notify.js";
import { PERMANENT_FAILURES } from "./messages.js";

/** Sending is retried for about half an hour (a receiver restarting, an SMTP server busy); a refusal (4xx, bad URL, the policy) is not retried. */
const { sendNotification } = proxyActivities<CairnActivities>({
  startToCloseTimeout: "1 minute",
  retry: { initialInterval: "5s", backoffCoefficient: 2, maximumInterval: "5 minutes", maximumAttempts: 10, nonRetryableErrorTypes: Object.values(PERMANENT_FAILURES) },
});

/**
 * One alert's opening or resolution sent to one channel of a plan, started by the
 * API's alert loop (api/alerts.ts). Not a job: it carries no Cairn search attributes.
 */
export async function alertNotificationWorkflow(input: SendNotificationInput): Promise<SendNotificationResult> {
  return sendNotification(input);
}
