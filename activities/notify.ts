/**
 * Notifications of a plan's jobs: a webhook (JSON body signed with HMAC-SHA256),
 * a Slack incoming webhook, or email over SMTP. Each channel is one activity call,
 * retried by Temporal on its own. Messages carry the job's outcome and figures,
 * never a password, a credential or the channel's own secret.
 */
import { createHmac } from "node:crypto";
import { Context } from "@temporalio/activity";
import { ApplicationFailure } from "@temporalio/common";
import nodemailer from "nodemailer";
import { hostRefusal } from "../policy/destinations.js";
import { PERMANENT_FAILURES, type AlertNotificationEvent, type FailoverNotificationEvent, type NotificationChannel, type NotificationEvent } from "../workflows/messages.js";
import { policyFailure, type ActivityDeps } from "./repository.js";

export interface SendNotificationInput {
  channel: NotificationChannel;
  /** A job's outcome (backupWorkflow) or an alert opening or resolving (alertNotificationWorkflow). */
  event: NotificationEvent | AlertNotificationEvent | FailoverNotificationEvent;
}

export interface SendNotificationResult {
  sent: true;
  /** Where it went, for the job's log: a host or the recipients, never a secret URL. */
  to: string;
}

/** The header carrying the signature: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the channel's secret>`. */
export const SIGNATURE_HEADER = "x-cairn-signature";

/** Signs a webhook body as receivers check it (see README: Notifications). */
export function signBody(secret: string, body: string, unixSeconds: number): string {
  return `t=${unixSeconds},v1=${createHmac("sha256", secret).update(`${unixSeconds}.${body}`).digest("hex")}`;
}

type AnyEvent = NotificationEvent | AlertNotificationEvent | FailoverNotificationEvent;

function isAlert(event: AnyEvent): event is AlertNotificationEvent {
  return "type" in event && event.type === "alert";
}

function isFailover(event: AnyEvent): event is FailoverNotificationEvent {
  return "type" in event && event.type === "failover";
}

/** A failover's figures for people: the new primary, RTO, RPO, or the failed step's cause. */
function failoverDetail(event: FailoverNotificationEvent): string {
  if (event.status === "failed") return `reason given: ${event.reason}\nsteps: ${event.steps.map((s) => `${s.name} (${s.outcome})`).join("; ") || "none"}`;
  const rpo = event.rpo ? `${event.rpo.bytes ?? "unknown"} bytes, ${event.rpo.seconds ?? "unknown"} s (${event.rpo.basis})` : "unknown";
  return `reason given: ${event.reason}\nRTO: ${event.rtoMs ?? "?"} ms (${event.rtoPath ?? "direct"})\nRPO: ${rpo}${event.warnings?.length ? `\nwarnings: ${event.warnings.join("; ")}` : ""}`;
}

/** One line for people: what happened to which plan. */
export function headline(event: AnyEvent): string {
  if (isFailover(event)) {
    return event.status === "succeeded"
      ? `Cairn: failover of plan ${event.planName} completed: the new primary is ${event.newPrimary ? `${event.newPrimary.host}:${event.newPrimary.port}` : "?"} (RTO ${((event.rtoMs ?? 0) / 1000).toFixed(1)} s, RPO ${event.rpo?.bytes ?? "unknown"} bytes)`
      : `Cairn: failover of plan ${event.planName} FAILED: ${event.error ?? "no reason given"}`;
  }
  if (isAlert(event)) return `Cairn alert${event.state === "resolved" ? " resolved" : ""} [${event.severity}]: ${event.title}`;
  return event.status === "succeeded"
    ? `Cairn: backup of plan ${event.planName} succeeded (snapshot ${event.snapshotId?.slice(0, 8) ?? "?"}, ${event.filesTotal ?? 0} files, ${formatBytes(event.bytesAdded ?? 0)} added in ${(event.durationSeconds ?? 0).toFixed(1)} s)`
    : `Cairn: backup of plan ${event.planName} FAILED: ${event.error ?? "no reason given"}`;
}

function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function notifyActivities(deps: ActivityDeps) {
  /** The policy judges a notification's host as it judges a destination's. */
  const allowHost = async (host: string) => {
    const refusal = await hostRefusal(deps.policy, host.replace(/^\[|\]$/g, ""));
    if (refusal) throw policyFailure(refusal);
  };
  const post = async (url: string, body: string, headers: Record<string, string>, what: string): Promise<void> => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw ApplicationFailure.nonRetryable(`the ${what} URL is not a URL; fix the plan's notifications`, PERMANENT_FAILURES.invalidRequest);
    }
    await allowHost(parsed.hostname);
    const response = await fetch(parsed, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body,
      redirect: "error",
      signal: AbortSignal.any([Context.current().cancellationSignal, AbortSignal.timeout(15_000)]),
    });
    // Never the URL itself in a message: a Slack URL is a secret.
    const detail = `the ${what} at ${parsed.host} answered ${response.status} ${response.statusText}`.trim();
    if (response.ok) return;
    if (response.status >= 400 && response.status < 500 && response.status !== 429) {
      throw ApplicationFailure.nonRetryable(`${detail}; check the plan's notifications`, PERMANENT_FAILURES.invalidRequest);
    }
    throw new Error(`${detail}; will try again`);
  };

  return {
    async sendNotification({ channel, event }: SendNotificationInput): Promise<SendNotificationResult> {
      if (channel.type === "webhook") {
        const body = JSON.stringify(event);
        const headers: Record<string, string> = { "x-cairn-event": isAlert(event) ? `alert.${event.kind}.${event.state}` : isFailover(event) ? `failover.${event.status}` : `backup.${event.status}` };
        if (channel.sealedSecret) headers[SIGNATURE_HEADER] = signBody(deps.secretBox.open(channel.sealedSecret), body, Math.floor(Date.now() / 1000));
        await post(channel.url, body, headers, "webhook");
        return { sent: true, to: new URL(channel.url).host };
      }
      if (channel.type === "slack") {
        const url = deps.secretBox.open(channel.sealedUrl);
        const text = isAlert(event)
          ? `${headline(event)}\n${event.detail}`
          : isFailover(event)
            ? `${headline(event)}\n${failoverDetail(event)}`
          : headline(event) + (event.warnings ? `\n${event.warnings} warning${event.warnings === 1 ? "" : "s"}: see job ${event.jobId}` : "");
        await post(url, JSON.stringify({ text, blocks: [{ type: "section", text: { type: "mrkdwn", text } }] }), {}, "Slack webhook");
        return { sent: true, to: new URL(url).host };
      }
      const smtp = process.env.CAIRN_SMTP_URL;
      if (!smtp) throw ApplicationFailure.nonRetryable("email notifications need CAIRN_SMTP_URL (smtp://user:password@host:587 or smtps://...) on the workers", PERMANENT_FAILURES.invalidRequest);
      let server: URL;
      try {
        server = new URL(smtp);
      } catch {
        throw ApplicationFailure.nonRetryable("CAIRN_SMTP_URL on this worker is not a URL; use smtp://user:password@host:587", PERMANENT_FAILURES.invalidRequest);
      }
      await allowHost(server.hostname);
      const transport = nodemailer.createTransport(smtp);
      try {
        await transport.sendMail({
          from: process.env.CAIRN_SMTP_FROM ?? "cairn@localhost",
          to: channel.to,
          ...(isFailover(event)
            ? {
                subject: event.status === "succeeded" ? `[Cairn] failover of ${event.planName} completed` : `[Cairn] failover of ${event.planName} FAILED`,
                text: `${headline(event)}\n\n${failoverDetail(event)}\n\nplan: ${event.planName} (${event.planId})\nfailover: ${event.failoverId}\nat: ${event.at}\n`,
              }
            : isAlert(event)
            ? {
                subject: `[Cairn] ${event.state === "resolved" ? "resolved: " : ""}${event.title}`,
                text: `${headline(event)}\n\n${event.detail}\n\nalert: ${event.alertId} (${event.kind})\n${event.planId ? `plan: ${event.planId}\n` : ""}${event.repositoryId ? `repository: ${event.repositoryId}\n` : ""}at: ${event.at}\n`,
              }
            : {
                subject: event.status === "succeeded" ? `[Cairn] backup of ${event.planName} succeeded` : `[Cairn] backup of ${event.planName} FAILED`,
                text: `${headline(event)}\n\nplan: ${event.planName} (${event.planId})\njob: ${event.jobId}\nat: ${event.at}\n${event.warnings ? `warnings: ${event.warnings}\n` : ""}`,
              }),
        });
      } catch (err) {
        const e = err as Error & { responseCode?: number; code?: string };
        // Only Cairn's words and the server's status code: its answer may quote the login.
        const why = `the SMTP server at ${server.host} refused the mail (${e.responseCode ?? e.code ?? "no answer"})`;
        if (e.responseCode && e.responseCode >= 500) throw ApplicationFailure.nonRetryable(`${why}; check CAIRN_SMTP_URL and the recipients`, PERMANENT_FAILURES.invalidRequest);
        throw new Error(`${why}; will try again`);
      } finally {
        transport.close();
      }
      return { sent: true, to: channel.to.join(", ") };
    },
  };
}
