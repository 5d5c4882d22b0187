import { api, hasRoute } from "../api.js";
import { h, replace } from "../dom.js";
import { ago, between, bytes, duration, shortId, time } from "../format.js";
import type { Job, JobLogLine, JobSummary, Plan } from "../types.js";
import { actionButton, missingRoute, problemText, section, statusBadge, table, type PageContext } from "../ui.js";

const STATUSES = ["", "running", "completed", "failed", "cancelled"];

/** The job's workflow in the Temporal Web UI (a new tab), when the API says where that runs (CAIRN_TEMPORAL_UI_URL). */
function temporalLink(j: JobSummary, attrs: Record<string, string> = {}): HTMLElement | string {
  if (!j.workflowUrl) return "";
  return h("a", { href: j.workflowUrl, target: "_blank", rel: "noopener noreferrer", class: "temporal-link", title: `Workflow ${j.id} in the Temporal Web UI`, ...attrs }, "Temporal UI ↗");
}

/** Runs a failed or cancelled job again with the same input (POST /v1/jobs/{id}/retry) and opens the new job. */
function retryButton(ctx: PageContext, j: JobSummary, attrs: Record<string, string> = {}): HTMLButtonElement {
  return actionButton(ctx.session, "jobs:retry", "Retry", async (button) => {
    button.disabled = true;
    try {
      const { jobId } = await api<{ jobId: string }>("POST", `/v1/jobs/${encodeURIComponent(j.id)}/retry`);
      location.hash = `#/jobs/${encodeURIComponent(jobId)}`;
    } catch (err) {
      ctx.notify(problemText(err));
      button.disabled = false;
    }
  }, { "data-job": j.id, ...attrs });
}

const retriable = (j: JobSummary) => j.status === "failed" || j.status === "cancelled";

/** Jobs newest first, filtered by status (failed: each with its cause and Retry); running ones are refreshed while the page is open. */
export async function jobsPage(root: HTMLElement, ctx: PageContext): Promise<void> {
  const list = h("section", { id: "jobs" });
  const filter = h("select", { id: "job-status", onchange: () => void load() }, STATUSES.map((s) => h("option", { value: s }, s || "any status")));
  // #/jobs?status=failed opens the failed jobs (the overview links there).
  filter.value = new URLSearchParams(location.hash.split("?")[1] ?? "").get("status") ?? "";
  replace(root, h("div", { class: "page-head" }, h("h1", {}, "Jobs"), h("label", { for: "job-status" }, "Status "), filter), list);
  let anyRunning = false;
  async function load(): Promise<void> {
    await section(list, async () => {
      if (!(await hasRoute("GET /v1/jobs"))) return missingRoute("GET /v1/jobs", "jobs");
      const { jobs } = await api<{ jobs: JobSummary[] }>("GET", `/v1/jobs?limit=100${filter.value ? `&status=${filter.value}` : ""}`);
      anyRunning = jobs.some((j) => j.status === "running");
      return table(
        ["Job", "Kind", "Status", "Started", "Took", "Cause", "Workflow", ""],
        jobs.map((j) => [
          h("a", { href: `#/jobs/${encodeURIComponent(j.id)}`, class: "mono" }, j.id),
          j.kind,
          statusBadge(j.status),
          h("span", { title: time(j.startedAt) }, ago(j.startedAt)),
          between(j.startedAt, j.finishedAt),
          j.error ? h("span", { class: "problem job-cause" }, j.error) : "",
          temporalLink(j),
          retriable(j) ? retryButton(ctx, j, { class: "retry-job" }) : "",
        ]),
        { "aria-label": "Jobs", class: "cards-on-phone" },
      );
    });
  }
  await load();
  ctx.every(10_000, () => (anyRunning ? load() : undefined));
}

/** One job: phase and progress, polled while it runs; its snapshot, error and warnings; cancel. */
export async function jobPage(root: HTMLElement, ctx: PageContext, id?: string): Promise<void> {
  const body = h("section", { id: "job" });
  replace(root, h("div", { class: "page-head" }, h("h1", {}, "Job ", h("span", { class: "mono" }, id ?? "")), h("a", { href: "#/jobs" }, "All jobs")), body);
  if (!id) return;
  let job: Job | undefined;
  let plan: Plan | undefined;

  async function load(): Promise<void> {
    await section(body, async () => {
      const [j, log] = await Promise.all([
        api<Job>("GET", `/v1/jobs/${encodeURIComponent(id!)}`),
        api<{ lines: JobLogLine[] }>("GET", `/v1/jobs/${encodeURIComponent(id!)}/logs`).then((l) => l.lines, (err: unknown) => err),
      ]);
      job = j;
      if (job.planId && !plan) plan = await api<Plan>("GET", `/v1/plans/${encodeURIComponent(job.planId)}`).catch(() => undefined);
      return [view(job), stepsView(job), logView(log)];
    });
  }

  function view(j: Job): HTMLElement {
    const p = j.progress;
    const running = j.status === "running";
    const cancel = actionButton(ctx.session, "jobs:cancel", "Cancel", async (button) => {
      button.disabled = true;
      try {
        await api("POST", `/v1/jobs/${encodeURIComponent(j.id)}/cancel`);
        ctx.notify("Cancellation requested; the job stops at its next checkpoint.", "info");
        await load();
      } catch (err) {
        ctx.notify(problemText(err));
        button.disabled = false;
      }
    }, { id: "cancel-job" });
    const facts: [string, Node | string][] = [
      ["Status", h("span", { id: "job-status" }, statusBadge(j.status))],
      ["Kind", j.kind],
      ["Phase", h("span", { id: "job-phase" }, j.phase)],
      ["Plan", plan ? h("a", { href: `#/plans/${encodeURIComponent(plan.id)}` }, plan.name) : (j.planId ?? "–")],
      ["Started", time(j.startedAt)],
      ["Finished", j.finishedAt ? `${time(j.finishedAt)} (took ${between(j.startedAt, j.finishedAt)})` : "–"],
      ["Files", String(p.filesDone)],
      ["Bytes", p.bytesTotal ? `${bytes(p.bytesDone)} of ${bytes(p.bytesTotal)}` : bytes(p.bytesDone)],
      ["Rate", running ? `${bytes(p.bytesPerSecond)}/s` : "–"],
      ["ETA", running && p.etaSeconds !== null ? duration(p.etaSeconds) : "–"],
    ];
    if (j.workflowUrl) facts.push(["Workflow", temporalLink(j, { id: "job-workflow" })]);
    if (j.snapshotId) {
      facts.push(["Snapshot", plan ? h("a", { href: `#/snapshots/${encodeURIComponent(plan.repositoryId)}`, id: "job-snapshot", class: "mono" }, shortId(j.snapshotId)) : h("span", { id: "job-snapshot", class: "mono" }, shortId(j.snapshotId))]);
    }
    return h(
      "div",
      {},
      running && p.bytesTotal > 0 ? h("progress", { max: p.bytesTotal, value: p.bytesDone, "aria-label": "Bytes done" }) : null,
      h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      j.error ? h("p", { class: "problem", id: "job-error" }, j.error) : null,
      j.warnings.length ? [h("h2", {}, "Warnings"), h("ul", {}, j.warnings.map((w) => h("li", {}, w)))] : null,
      running ? h("div", { class: "actions" }, cancel) : null,
      retriable(j) ? h("div", { class: "actions" }, retryButton(ctx, j, { id: "retry-job", title: "Run the job again with the same input (a new job)" })) : null,
    );
  }

  await load();
  // Progress is a workflow query; two seconds keeps a one-minute backup to about thirty reads.
  // A job that just finished gets its steps once the catalog recorded it: look a few more times for them.
  let lookingForSteps = 15;
  ctx.every(2000, () => (job?.status === "running" ? load() : job && !job.steps?.length && lookingForSteps-- > 0 ? load() : undefined));
}

/** A finished job's steps (GET /v1/jobs/{id} answers them once it ended): each with its duration, attempts and outcome. */
function stepsView(j: Job): HTMLElement | null {
  if (!j.steps?.length) return null;
  return h(
    "section",
    { id: "job-steps" },
    h("h2", {}, "Steps"),
    table(
      ["Step", "Outcome", "Took", "Attempts", "Error"],
      j.steps.map((s) => [s.name, statusBadge(s.outcome === "timed-out" ? "failed" : s.outcome, s.outcome), duration(s.durationSeconds), String(s.attempts), s.error ? h("span", { class: "problem" }, s.error) : ""]),
      { "aria-label": "Steps of the job" },
    ),
  );
}

/** The job's log (GET /v1/jobs/{id}/logs): each step scheduled, retried, completed or failed, warnings and the outcome. */
function logView(log: JobLogLine[] | unknown): HTMLElement {
  const body = !Array.isArray(log)
    ? h("p", { class: "problem" }, problemText(log))
    : log.length === 0
      ? h("p", { class: "empty" }, "Nothing logged yet.")
      : h("ol", { class: "job-log mono", "aria-label": "Log of the job" }, (log as JobLogLine[]).map((l) => h("li", { class: `log-${l.level}` }, h("time", { datetime: l.time }, new Date(l.time).toLocaleTimeString()), ` ${l.level} `, l.message)));
  return h("section", { id: "job-log" }, h("h2", {}, "Log"), body);
}
