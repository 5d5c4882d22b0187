import { isCancellation, proxyActivities } from "@temporalio/workflow";
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

/**
 * Sends one event to each channel in parallel with `send` (the caller's proxied
 * sendNotification); returns why each one that could not be reached failed. A
 * cancellation of the workflow is passed on, never counted as a failed channel.
 */
export async function sendToChannels(
  send: (input: SendNotificationInput) => Promise<SendNotificationResult>,
  channels: readonly SendNotificationInput["channel"][],
  event: SendNotificationInput["event"],
): Promise<string[]> {
  const outcomes = await Promise.allSettled(channels.map((channel) => send({ channel, event })));
  const problems: string[] = [];
  for (const [i, outcome] of outcomes.entries()) {
    if (outcome.status === "fulfilled") continue;
    if (isCancellation(outcome.reason)) throw outcome.reason;
    problems.push(`the ${channels[i].type} notification could not be sent: ${innermostMessage(outcome.reason)}`);
  }
  return problems;
}

/** The message of the deepest cause: an activity failure's own words, not Temporal's wrapper. */
export function innermostMessage(err: unknown): string {
  let e = err as Error | undefined;
  while (e && e.cause instanceof Error) e = e.cause;
  return e?.message ?? String(err);
}
