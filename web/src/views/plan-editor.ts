import { api, hasRoute } from "../api.js";
import { cronBuilder, describeCron } from "../cron-builder.js";
import { h, replace, type Child } from "../dom.js";
import { field, select } from "../form.js";
import type { NotificationInput, Plan, PlanInput, PlanPatch, Repository, Retention, SchedulePreview, SchedulePreviewInput } from "../types.js";
import { problemText, section, type PageContext } from "../ui.js";
import { scheduleState } from "./plans.js";

type SourceKind = "files" | "postgres-physical" | "postgres-logical" | "mysql-logical" | "mysql-physical";
const SOURCES: [SourceKind, string][] = [
  ["files", "Files and directories"],
  ["postgres-physical", "PostgreSQL, physical (base backups + WAL: point-in-time recovery)"],
  ["postgres-logical", "PostgreSQL, logical (pg_dump)"],
  ["mysql-logical", "MySQL / MariaDB, logical (mariadb-dump)"],
  ["mysql-physical", "MySQL / MariaDB, physical (mariadb-backup)"],
];
const OVERLAPS: [string, string][] = [
  ["skip", "skip the new run (default)"],
  ["buffer_one", "run it after (at most one waiting)"],
  ["buffer_all", "run each after the other"],
  ["cancel_other", "cancel the running one"],
  ["terminate_other", "terminate the running one"],
  ["allow_all", "run both at once"],
];
const RETENTION: [keyof Retention, string][] = [
  ["keepLast", "Last"],
  ["keepHourly", "Hourly"],
  ["keepDaily", "Daily"],
  ["keepWeekly", "Weekly"],
  ["keepMonthly", "Monthly"],
  ["keepYearly", "Yearly"],
];

interface Policy {
  sourceRoots: string[];
  restoreRoots: string[];
}

const browserZone = () => Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
const lines = (text: string) => text.split("\n").map((l) => l.trim()).filter(Boolean);
const list = (text: string) => text.split(",").map((l) => l.trim()).filter(Boolean);

/**
 * Create (no id) or edit a plan: its source (files with a path picker under the
 * allowed source roots, or a database), schedule (cron builder, time zone,
 * overlap), retention, copies, notifications and drills. Saving goes to the
 * plan's page, which shows the next runs as Temporal computed them.
 */
export async function planEditorPage(root: HTMLElement, ctx: PageContext, id?: string): Promise<void> {
  const body = h("section", { id: "plan-editor" });
  replace(root, h("div", { class: "page-head" }, h("h1", {}, id ? "Edit plan" : "New plan"), h("a", { href: id ? `#/plans/${encodeURIComponent(id)}` : "#/plans" }, "Back")), body);
  await section(body, async () => {
    const [plan, { repositories }, policy] = await Promise.all([
      id ? api<Plan>("GET", `/v1/plans/${encodeURIComponent(id)}`) : Promise.resolve(undefined),
      api<{ repositories: Repository[] }>("GET", "/v1/repositories?limit=500"),
      hasRoute("GET /v1/policy").then((has) => (has ? api<Policy>("GET", "/v1/policy").catch(() => undefined) : undefined)),
    ]);
    if (!repositories.length) return h("p", { class: "problem" }, "No repository is registered yet: a plan backs up into one. Register it first (POST /v1/repositories or cairn init + the API).");
    return editorForm(ctx, repositories, plan, policy);
  });
}

function editorForm(ctx: PageContext, repositories: Repository[], plan: Plan | undefined, policy: Policy | undefined): Child {
  const problem = h("p", { class: "problem", role: "alert", id: "plan-problem" });

  // Plan
  const name = h("input", { id: "plan-name", required: true, maxlength: 100, value: plan?.name ?? "", autocomplete: "off" });
  const repository = select("plan-repository", repositories.map((r) => [r.id, `${r.name} (${r.url})`]), plan?.repositoryId ?? repositories[0].id);

  // Source
  const s = plan?.source;
  const kindNow: SourceKind = !s || s.type === "files" ? "files" : (`${s.type}-${s.mode}` as SourceKind);
  const kind = select("plan-source", SOURCES, kindNow);
  const paths = h("textarea", { id: "plan-paths", rows: 3, cols: 50, spellcheck: "false" }, s?.type === "files" ? s.paths.join("\n") : "");
  const exclude = h("textarea", { id: "plan-exclude", rows: 2, cols: 50, spellcheck: "false" }, s?.type === "files" ? (s.exclude ?? []).join("\n") : "");
  const url = h("input", { id: "plan-db-url", size: 50, spellcheck: "false", autocomplete: "off", value: s && s.type !== "files" ? s.url : "", placeholder: "postgresql://backup@db.internal:5432/postgres" });
  const password = h("input", { id: "plan-db-password", type: "password", autocomplete: "new-password", placeholder: s && s.type !== "files" && s.passwordStored ? "stored (leave empty to keep)" : "" });
  const databases = h("input", { id: "plan-db-names", size: 50, value: s && s.type !== "files" && s.mode === "logical" ? (s.databases ?? []).join(", ") : "", placeholder: "all" });
  const filesPart = h("div", { class: "source-files" }, pathPicker(paths, policy), field("Paths to back up (one per line, absolute)", paths), field("Leave out (patterns, one per line)", exclude, "*.tmp matches any name; /var/www/cache/* an absolute path"));
  const databasesField = field("Databases (comma-separated; empty: all)", databases);
  const dbPart = h("div", { class: "source-db" }, field("Server URL (no password in it)", url), field("Password", password, "stored sealed with the platform key, never shown again"), databasesField);
  const showSource = () => {
    filesPart.hidden = kind.value !== "files";
    dbPart.hidden = kind.value === "files";
    databasesField.hidden = !kind.value.endsWith("logical");
    drillSql.disabled = !kind.value.startsWith("postgres-physical");
  };
  kind.addEventListener("change", showSource);

  // Schedule
  const scheduled = h("input", { id: "plan-scheduled", type: "checkbox", checked: Boolean(plan?.schedule) || !plan });
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  const timezone = h("input", { id: "plan-timezone", list: "time-zones", value: plan?.schedule?.timezone ?? browserZone(), size: 24, spellcheck: "false", autocomplete: "off" });
  const zoneList = h("datalist", { id: "time-zones" }, ["UTC", ...zones].map((z) => h("option", { value: z })));
  const said = h("p", { class: "hint", id: "schedule-words", "aria-live": "polite" });
  const cron = cronBuilder("schedule", plan?.schedule?.cron ?? "0 3 * * *", () => say());
  const overlap = select("plan-overlap", OVERLAPS, plan?.schedule?.overlap ?? "skip");
  const rpo = h("input", { id: "plan-rpo", type: "number", min: 5, step: 1, value: plan?.rpoMinutes ?? "", placeholder: "from the schedule" });
  const blackouts = plan?.schedule?.blackouts ?? [];
  const upcoming = h("div", { id: "schedule-preview", "aria-live": "polite" });
  const previewSoon = livePreview(upcoming, () => (scheduled.checked ? { cron: cron.value(), timezone: timezone.value.trim() || "UTC", ...(blackouts.length ? { blackouts } : {}) } : undefined));
  const say = () => {
    replace(said, scheduled.checked ? `Runs ${describeCron(cron.value(), timezone.value.trim() || "UTC")}.` : "No schedule: the plan runs when started.");
    previewSoon();
  };
  const schedulePart = h("div", { class: "schedule-fields" }, cron.element, h("div", { class: "inline-form" }, field("Time zone", timezone), zoneList, field("When a run is due while the last still runs", overlap), field("RPO, minutes (alert when the last good backup is older)", rpo)), said, upcoming);
  const showSchedule = () => {
    schedulePart.hidden = !scheduled.checked;
    say();
  };
  scheduled.addEventListener("change", showSchedule);
  timezone.addEventListener("input", say);
  // A saved plan's schedule as Temporal runs it now (recent runs, paused), next to the preview of the one being edited.
  const preview = h("div", { id: "plan-next-runs" });
  if (plan?.schedule) void scheduleState(preview, plan);

  // Retention
  const keep = RETENTION.map(([key, label]) => [key, h("input", { id: `plan-${key}`, type: "number", min: 0, step: 1, value: (plan?.retention?.[key] as number | undefined) ?? "", size: 4 }), label] as const);
  const keepWithin = h("input", { id: "plan-keepWithin", value: plan?.retention?.keepWithin ?? "", placeholder: "30d", size: 6 });

  // Copies and verification
  const secondaries = repositories.map((r) => [r.id, h("input", { type: "checkbox", class: "plan-secondary", value: r.id, "data-name": r.name, checked: plan?.secondaryRepositoryIds.includes(r.id) ?? false })] as const);
  const verify = h("input", { id: "plan-verify", type: "number", min: 0, max: 100, step: 1, value: plan?.verifySamplePercent ?? "", placeholder: "default" });
  const copiesPart = h(
    "div",
    {},
    h("div", { class: "checks", id: "plan-secondaries" }, secondaries.map(([rid, box]) => h("label", { class: "check", "data-repository": rid }, box, ` ${repositories.find((r) => r.id === rid)!.name}`))),
    field("Read back after each backup (% of the new packs)", verify),
  );
  const showSecondaries = () => {
    for (const [rid, box] of secondaries) {
      const own = rid === repository.value;
      box.disabled = own;
      if (own) box.checked = false;
      (box.parentElement as HTMLElement).hidden = own;
    }
  };
  repository.addEventListener("change", showSecondaries);

  // Notifications
  const channels = h("div", { id: "plan-notifications" });
  const replaceChannels = h("input", { id: "plan-replace-notifications", type: "checkbox", checked: !plan });
  const addChannel = h("button", { type: "button", class: "link", id: "add-notification", onclick: () => channels.append(channelRow()) }, "Add a channel");
  const notificationsPart = h(
    "div",
    {},
    plan?.notifications.length ? h("p", {}, "Now: ", plan.notifications.map((n) => `${n.type} ${n.url ?? n.host ?? (n.to ?? []).join(", ")} (${n.on.join(", ")})`).join("; ")) : h("p", { class: "hint" }, plan ? "No channel now." : ""),
    plan ? h("label", { class: "check" }, replaceChannels, " Replace the channels with those below (a webhook's secret or a Slack URL must be given again)") : null,
    channels,
    addChannel,
  );

  // Drills
  const drillOn = h("input", { id: "plan-drill", type: "checkbox", checked: Boolean(plan?.drill) });
  const drillScheduled = h("input", { id: "plan-drill-scheduled", type: "checkbox", checked: Boolean(plan?.drill?.cron) });
  const drillCron = cronBuilder("drill", plan?.drill?.cron ?? "0 5 * * 0", () => undefined);
  const drillZone = h("input", { id: "plan-drill-timezone", list: "time-zones", value: plan?.drill?.timezone ?? browserZone(), size: 24 });
  const drillSql = h("input", { id: "plan-drill-sql", size: 50, value: plan?.drill?.checkSql ?? "", placeholder: "SELECT count(*) FROM orders" });
  const drillFields = h("div", {}, h("label", { class: "check" }, drillScheduled, " On a schedule (else by hand only)"), drillCron.element, field("Time zone", drillZone), field("Check query on the restored copy (physical PostgreSQL)", drillSql));
  const showDrill = () => {
    drillFields.hidden = !drillOn.checked;
    drillCron.element.hidden = !drillScheduled.checked;
  };
  drillOn.addEventListener("change", showDrill);
  drillScheduled.addEventListener("change", showDrill);

  const submit = h("button", { type: "submit", id: "save-plan" }, plan ? "Save changes" : "Create plan");

  const sourceInput = (): PlanInput["source"] => {
    const k = kind.value as SourceKind;
    if (k === "files") {
      const ex = lines(exclude.value);
      return { type: "files", paths: lines(paths.value), ...(ex.length ? { exclude: ex } : {}) };
    }
    const [type, mode] = k.split("-") as ["postgres" | "mysql", "physical" | "logical"];
    const names = list(databases.value);
    return { type, mode, url: url.value.trim(), ...(password.value ? { password: password.value } : {}), ...(mode === "logical" && names.length ? { databases: names } : {}) } as PlanInput["source"];
  };
  /** Whether the source differs from the plan's (a given password is a change): an unchanged source is not sent, so the worker is not asked to check its paths again. */
  const sourceChanged = (next: PlanInput["source"]): boolean => {
    if (!plan) return true;
    const { passwordStored: _, ...before } = plan.source as Record<string, unknown>;
    return JSON.stringify(normalize(before)) !== JSON.stringify(normalize(next as unknown as Record<string, unknown>));
  };
  const retention = (): Retention | undefined => {
    const r: Retention = {};
    for (const [key, input] of keep) if (input.value !== "") (r as Record<string, number>)[key] = Number(input.value);
    if (keepWithin.value.trim()) r.keepWithin = keepWithin.value.trim();
    return Object.keys(r).length ? r : undefined;
  };
  const notifications = (): NotificationInput[] =>
    [...channels.querySelectorAll<HTMLElement>(".channel")].map((row) => {
      const type = (row.querySelector(".channel-type") as HTMLSelectElement).value;
      const target = (row.querySelector(".channel-target") as HTMLInputElement).value.trim();
      const secret = (row.querySelector(".channel-secret") as HTMLInputElement).value;
      const on = [...row.querySelectorAll<HTMLInputElement>(".channel-on:checked")].map((b) => b.value) as NotificationInput["on"];
      if (type === "email") return { type, to: list(target), on };
      if (type === "slack") return { type, url: target, on };
      return { type: "webhook", url: target, ...(secret ? { secret } : {}), on };
    });

  const save = async (e: Event) => {
    e.preventDefault();
    submit.disabled = true;
    replace(problem);
    const source = sourceInput();
    const schedule = scheduled.checked ? { cron: cron.value(), timezone: timezone.value.trim() || "UTC", overlap: overlap.value as NonNullable<PlanInput["schedule"]>["overlap"], ...(blackouts.length ? { blackouts } : {}) } : undefined;
    const drill = drillOn.checked ? { ...(drillScheduled.checked ? { cron: drillCron.value() } : {}), timezone: drillZone.value.trim() || "UTC", ...(drillSql.value.trim() && !drillSql.disabled ? { checkSql: drillSql.value.trim() } : {}) } : undefined;
    const secondaryRepositoryIds = secondaries.filter(([, box]) => box.checked && !box.disabled).map(([rid]) => rid);
    try {
      let planId = plan?.id;
      if (!plan) {
        const input: PlanInput = {
          name: name.value.trim(),
          repositoryId: repository.value,
          source,
          ...(schedule ? { schedule } : {}),
          ...(retention() ? { retention: retention() } : {}),
          ...(verify.value !== "" ? { verifySamplePercent: Number(verify.value) } : {}),
          ...(secondaryRepositoryIds.length ? { secondaryRepositoryIds } : {}),
          ...(notifications().length ? { notifications: notifications() } : {}),
          ...(rpo.value !== "" ? { rpoMinutes: Number(rpo.value) } : {}),
          ...(drill ? { drill } : {}),
        };
        ({ id: planId } = await api<{ id: string }>("POST", "/v1/plans", input));
      } else {
        const change: PlanPatch = {
          name: name.value.trim(),
          repositoryId: repository.value,
          ...(sourceChanged(source) ? { source } : {}),
          schedule: schedule ?? null,
          retention: retention() ?? null,
          verifySamplePercent: verify.value !== "" ? Number(verify.value) : null,
          secondaryRepositoryIds,
          ...(replaceChannels.checked ? { notifications: notifications() } : {}),
          rpoMinutes: rpo.value !== "" ? Number(rpo.value) : null,
          drill: drill ?? null,
        };
        await api("PATCH", `/v1/plans/${encodeURIComponent(plan.id)}`, change);
      }
      ctx.notify(plan ? "Plan saved." : "Plan created.", "info");
      location.hash = `#/plans/${encodeURIComponent(planId!)}`;
    } catch (err) {
      replace(problem, problemText(err));
      submit.disabled = false;
      problem.scrollIntoView({ block: "nearest" });
    }
  };

  const form = h(
    "form",
    { class: "plan-form", id: "plan-form", onsubmit: save, novalidate: true },
    h("fieldset", {}, h("legend", {}, "Plan"), h("div", { class: "inline-form" }, field("Name", name), field("Repository", repository))),
    h("fieldset", {}, h("legend", {}, "Source"), field("What to back up", kind), filesPart, dbPart),
    h("fieldset", {}, h("legend", {}, "Schedule"), h("label", { class: "check" }, scheduled, " Run on a schedule"), schedulePart, preview),
    h("fieldset", {}, h("legend", {}, "Retention (snapshots to keep; all empty: keep everything)"), h("div", { class: "inline-form" }, keep.map(([, input, label]) => field(label, input)), field("Within", keepWithin, "30d, 6m, 1y"))),
    h("fieldset", {}, h("legend", {}, "Copies to secondary repositories, and verification"), copiesPart),
    h("fieldset", {}, h("legend", {}, "Notifications"), notificationsPart),
    h("fieldset", {}, h("legend", {}, "Recovery drills"), h("label", { class: "check" }, drillOn, " Run recovery drills (restore the latest backup into a scratch place, verify, time it)"), drillFields),
    h("div", { class: "actions" }, submit),
    problem,
  );
  showSource();
  showSchedule();
  showSecondaries();
  showDrill();
  return form;
}

/** Key order and empty lists do not make a source differ. */
function normalize(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(o)
      .filter(([, v]) => v !== undefined && !(Array.isArray(v) && v.length === 0))
      .sort(([a], [b]) => a.localeCompare(b)),
  );
}

/** A notification channel's row: type, where to, its secret (webhooks), and which outcomes it gets. */
function channelRow(): HTMLElement {
  const type = h("select", { class: "channel-type", "aria-label": "Channel type" }, [h("option", { value: "webhook" }, "Webhook"), h("option", { value: "slack" }, "Slack"), h("option", { value: "email" }, "Email")]);
  const target = h("input", { class: "channel-target", size: 40, "aria-label": "URL or recipients", placeholder: "https://hooks.example/cairn" });
  const secret = h("input", { class: "channel-secret", type: "password", autocomplete: "new-password", "aria-label": "Signing secret (optional, 16+ characters)", placeholder: "signing secret (optional)" });
  const on = (value: string, checked: boolean) => h("label", { class: "check" }, h("input", { type: "checkbox", class: "channel-on", value, checked }), ` ${value}`);
  const row = h("div", { class: "channel inline-form" }, type, target, secret, on("failure", true), on("success", false), h("button", { type: "button", class: "link", onclick: () => row.remove() }, "remove"));
  type.addEventListener("change", () => {
    secret.hidden = type.value !== "webhook";
    target.placeholder = type.value === "email" ? "ops@example.com, oncall@example.com" : type.value === "slack" ? "https://hooks.slack.com/services/…" : "https://hooks.example/cairn";
  });
  return row;
}

/**
 * Adds a path under one of the execution policy's source roots (GET /v1/policy):
 * pick the root, type the rest. The API checks every path again (and a worker
 * follows its links), so this only saves typing paths that would be refused.
 */
function pathPicker(paths: HTMLTextAreaElement, policy: Policy | undefined): Child {
  if (!policy) return h("p", { class: "hint" }, "Paths must lie under the execution policy's source roots (CAIRN_SOURCE_ROOTS); the API refuses others.");
  if (!policy.sourceRoots.length) return h("p", { class: "problem" }, "The execution policy allows no source root (CAIRN_SOURCE_ROOTS is empty): files plans cannot be created.");
  const rootSelect = select("path-root", policy.sourceRoots.map((r) => [r, r]), policy.sourceRoots[0]);
  const rest = h("input", { id: "path-rest", size: 30, spellcheck: "false", placeholder: "sub/directory", "aria-label": "Path under the root" });
  const add = () => {
    const root = rootSelect.value.replace(/\/+$/, "");
    const tail = rest.value.trim().replace(/^\/+/, "");
    const full = tail ? `${root}/${tail}` : root || "/";
    if (!lines(paths.value).includes(full)) paths.value = [...lines(paths.value), full].join("\n");
    rest.value = "";
    rest.focus();
  };
  rest.addEventListener("keydown", (e) => {
    if ((e as KeyboardEvent).key === "Enter") {
      e.preventDefault();
      add();
    }
  });
  return h("div", { class: "inline-form path-picker" }, field("Under the allowed root", rootSelect), field("Path", rest), h("button", { type: "button", id: "add-path", onclick: add }, "Add path"));
}

/** How long the preview waits after the last keystroke before asking Temporal (each ask creates and deletes a schedule). */
const PREVIEW_DELAY_MS = 400;

/**
 * The next runs of the schedule being edited, as Temporal computes them
 * (POST /v1/schedules/preview), before anything is saved. Returns the function
 * to call on every change: it waits until the typing stops, and an answer to
 * an older expression is dropped. Shows nothing on a server without the route.
 */
function livePreview(el: HTMLElement, spec: () => (SchedulePreviewInput & { timezone: string }) | undefined): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let asked = 0;
  const show = async () => {
    const body = spec();
    const mine = ++asked;
    if (!body) return replace(el);
    if (!(await hasRoute("POST /v1/schedules/preview"))) return replace(el);
    el.dataset.state = "loading";
    try {
      const { nextRuns } = await api<SchedulePreview>("POST", "/v1/schedules/preview", { ...body, count: 5 });
      if (mine !== asked) return;
      const inZone = (iso: string) => new Date(iso).toLocaleString(undefined, { timeZone: body.timezone, weekday: "short", year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
      replace(
        el,
        h("p", {}, `Next runs (${body.timezone}, as Temporal computes them; not saved yet):`),
        nextRuns.length ? h("ol", { id: "preview-runs", "aria-label": "Next runs before saving" }, nextRuns.map((t) => h("li", { "data-time": t, title: `${t} UTC` }, inZone(t)))) : h("p", { id: "preview-runs", class: "empty" }, "none: this expression never comes due"),
      );
    } catch (err) {
      if (mine !== asked) return;
      replace(el, h("p", { class: "problem", id: "preview-problem" }, problemText(err)));
    } finally {
      if (mine === asked) el.dataset.state = "done";
    }
  };
  return () => {
    clearTimeout(timer);
    timer = setTimeout(() => void show(), PREVIEW_DELAY_MS);
  };
}
