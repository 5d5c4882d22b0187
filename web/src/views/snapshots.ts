import { api, hasRoute } from "../api.js";
import { h, replace } from "../dom.js";
import { bytes, shortId, time } from "../format.js";
import type { Repository, Snapshot } from "../types.js";
import { actionButton, can, missingRoute, problemText, section, table, type PageContext } from "../ui.js";

/** A repository's snapshots, newest first, each with a restore form (target, directory, overwrite mode, dry run). */
export async function snapshotsPage(root: HTMLElement, ctx: PageContext, repositoryId?: string): Promise<void> {
  const body = h("section", { id: "snapshots" });
  replace(root, h("div", { class: "page-head" }, h("h1", {}, "Snapshots")), body);
  await section(body, async () => {
    if (!(await hasRoute("GET /v1/snapshots"))) return missingRoute("GET /v1/snapshots", "snapshots");
    const { repositories } = await api<{ repositories: Repository[] }>("GET", "/v1/repositories?limit=500");
    if (repositories.length === 0) return h("p", { class: "empty" }, "No repository is registered yet (POST /v1/repositories).");
    const chosen = repositories.find((r) => r.id === repositoryId) ?? repositories[0];
    const picker = h(
      "select",
      { id: "repository", onchange: () => (location.hash = `#/snapshots/${encodeURIComponent(picker.value)}`) },
      repositories.map((r) => h("option", { value: r.id, selected: r.id === chosen.id }, `${r.name} (${r.url})`)),
    );
    const list = h("div", {}, h("p", { class: "loading" }, "Reading the repository…"));
    void section(list, async () => {
      const { snapshots } = await api<{ snapshots: Snapshot[] }>("GET", `/v1/snapshots?repositoryId=${encodeURIComponent(chosen.id)}&limit=500`);
      const newest = [...snapshots].reverse();
      const restoreRow = h("div", { id: "restore" });
      return [
        table(
          ["Snapshot", "Time", "Paths", "Tags", "Files", "Size", ""],
          newest.map((s) => [
            h("span", { class: "mono snapshot-id", title: s.id }, shortId(s.id)),
            time(s.time),
            s.paths.join(", "),
            s.tags.join(", "),
            s.summary ? String((s.summary.filesNew ?? 0) + (s.summary.filesChanged ?? 0) + (s.summary.filesUnmodified ?? 0)) : "–",
            bytes(s.summary?.totalBytes),
            actionButton(ctx.session, "restores:create", "Restore…", () => replace(restoreRow, restoreForm(ctx, chosen, s)), { class: "restore-snapshot" }),
          ]),
          { "aria-label": "Snapshots" },
        ),
        restoreRow,
      ];
    });
    return [h("p", {}, h("label", { for: "repository" }, "Repository "), picker), list];
  });
}

const OVERWRITE: [string, string][] = [
  ["", "the target is empty (the API refuses a non-empty target without a mode)"],
  ["never", "never: only add what is missing"],
  ["if-changed", "if-changed: rewrite only what differs"],
  ["always", "always: replace what the snapshot has"],
];

function restoreForm(ctx: PageContext, repo: Repository, snap: Snapshot): HTMLElement {
  const target = h("input", { id: "restore-target", name: "target", required: true, placeholder: "/var/lib/cairn/restores/…", size: 50 });
  const dir = h("input", { id: "restore-path", name: "path", placeholder: snap.paths[0] ?? "/", size: 50 });
  const overwrite = h("select", { id: "restore-overwrite", name: "overwrite" }, OVERWRITE.map(([v, label]) => h("option", { value: v }, label)));
  const safety = h("input", { id: "restore-safety", type: "checkbox", checked: true });
  const dry = h("input", { id: "restore-dry", type: "checkbox" });
  const submit = h("button", { type: "submit", disabled: !can(ctx.session, "restores:create") }, "Start restore");
  const problem = h("p", { class: "problem", role: "alert" });
  return h(
    "form",
    {
      class: "restore-form",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        submit.disabled = true;
        replace(problem);
        try {
          const { jobId } = await api<{ jobId: string }>("POST", "/v1/restores", {
            repositoryId: repo.id,
            snapshotId: snap.id,
            target: target.value.trim(),
            ...(dir.value.trim() ? { path: dir.value.trim() } : {}),
            ...(overwrite.value ? { overwrite: overwrite.value, safetySnapshot: safety.checked } : {}),
            ...(dry.checked ? { dryRun: true } : {}),
          });
          location.hash = `#/jobs/${encodeURIComponent(jobId)}`;
        } catch (err) {
          replace(problem, problemText(err));
          submit.disabled = false;
        }
      },
    },
    h("h2", {}, "Restore snapshot ", h("span", { class: "mono" }, shortId(snap.id)), ` of ${repo.name}`),
    h("label", { for: "restore-target" }, "Target directory (under the restore roots of the execution policy)"),
    target,
    h("label", { for: "restore-path" }, "Only this directory of the snapshot (optional)"),
    dir,
    h("label", { for: "restore-overwrite" }, "When the target holds files"),
    overwrite,
    h("label", { class: "check" }, safety, " First back up what the target holds (safety snapshot)"),
    h("label", { class: "check" }, dry, " Dry run: count, write nothing"),
    h("div", { class: "actions" }, submit),
    problem,
  );
}
