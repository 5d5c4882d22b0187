import { api, hasRoute } from "../api.js";
import { h, replace } from "../dom.js";
import { bytes, shortId, time } from "../format.js";
import type { Plan, Repository, Snapshot } from "../types.js";
import { actionButton, can, missingRoute, problemText, section, table, type PageContext } from "../ui.js";

/** A repository's snapshots, newest first: browse one's tree (download, tick paths to restore), compare two, restore one (target, directory or ticked paths, overwrite mode, dry run). */
export async function snapshotsPage(root: HTMLElement, ctx: PageContext, repositoryId?: string): Promise<void> {
  const body = h("section", { id: "snapshots" });
  replace(root, h("div", { class: "page-head" }, h("h1", {}, "Snapshots")), body);
  await section(body, async () => {
    if (!(await hasRoute("GET /v1/snapshots"))) return missingRoute("GET /v1/snapshots", "snapshots");
    const { repositories } = await api<{ repositories: Repository[] }>("GET", "/v1/repositories?limit=500");
    if (repositories.length === 0) return h("p", { class: "empty" }, "No repository is registered yet: ", can(ctx.session, "repositories:write") ? h("a", { href: "#/repositories" }, "register one") : "an admin registers one", ".");
    const chosen = repositories.find((r) => r.id === repositoryId) ?? repositories[0];
    const picker = h(
      "select",
      { id: "repository", onchange: () => (location.hash = `#/snapshots/${encodeURIComponent(picker.value)}`) },
      repositories.map((r) => h("option", { value: r.id, selected: r.id === chosen.id }, `${r.name} (${r.url})`)),
    );
    // A plan's snapshots carry the host plan-<id>: #/snapshots/REPO?plan=ID shows that plan's only.
    const planId = new URLSearchParams(location.hash.split("?")[1] ?? "").get("plan") ?? "";
    const plans = can(ctx.session, "plans:read") ? (await api<{ plans: Plan[] }>("GET", "/v1/plans?limit=500").catch(() => ({ plans: [] as Plan[] }))).plans.filter((p) => p.repositoryId === chosen.id) : [];
    const planPicker = h(
      "select",
      { id: "snapshot-plan", onchange: () => (location.hash = `#/snapshots/${encodeURIComponent(chosen.id)}${planPicker.value ? `?plan=${encodeURIComponent(planPicker.value)}` : ""}`) },
      h("option", { value: "" }, "every plan and host"),
      plans.map((p) => h("option", { value: p.id, selected: p.id === planId }, p.name)),
    );
    const list = h("div", {}, h("p", { class: "loading" }, "Reading the repository…"));
    void section(list, async () => {
      const { snapshots } = await api<{ snapshots: Snapshot[] }>("GET", `/v1/snapshots?repositoryId=${encodeURIComponent(chosen.id)}&limit=500`);
      const newest = [...snapshots].reverse().filter((s) => !planId || s.host === `plan-${planId}`);
      const restoreRow = h("div", { id: "restore" });
      const panel = h("div", { id: "snapshot-panel" });
      const browse = await hasRoute("GET /v1/snapshots/{id}/tree");
      const ticked = new Set<string>();
      const compare = h("button", { type: "button", id: "compare-snapshots", disabled: true, title: "Tick two snapshots to compare them" }, "Compare ticked snapshots");
      compare.addEventListener("click", () => {
        const [a, b] = newest.filter((s) => ticked.has(s.id)).reverse();
        replace(restoreRow);
        void diffView(panel, chosen, a, b);
      });
      const tick = (s: Snapshot) =>
        h("input", {
          type: "checkbox",
          class: "compare-snapshot",
          "aria-label": `Compare snapshot ${shortId(s.id)}`,
          onchange: (e: Event) => {
            if ((e.target as HTMLInputElement).checked) ticked.add(s.id);
            else ticked.delete(s.id);
            compare.disabled = ticked.size !== 2;
          },
        });
      return [
        table(
          [...(browse ? ["Compare"] : []), "Snapshot", "Time", "Paths", "Tags", "Files", "Size", ""],
          newest.map((s) => [
            ...(browse ? [tick(s)] : []),
            h("span", { class: "mono snapshot-id", title: s.id }, shortId(s.id)),
            time(s.time),
            s.paths.join(", "),
            s.tags.join(", "),
            s.summary ? String((s.summary.filesNew ?? 0) + (s.summary.filesChanged ?? 0) + (s.summary.filesUnmodified ?? 0)) : "–",
            bytes(s.summary?.totalBytes),
            h(
              "span",
              { class: "actions" },
              browse ? h("button", { type: "button", class: "browse-snapshot", onclick: () => (replace(restoreRow), void treeView(panel, ctx, chosen, s, "/", restoreRow)) }, "Browse") : null,
              actionButton(ctx.session, "restores:create", "Restore…", () => (replace(panel), replace(restoreRow, restoreForm(ctx, chosen, s))), { class: "restore-snapshot" }),
            ),
          ]),
          { "aria-label": "Snapshots", class: "cards-on-phone" },
        ),
        browse ? h("div", { class: "actions" }, compare) : null,
        panel,
        restoreRow,
      ];
    });
    return [h("p", { class: "inline-form" }, h("label", { class: "field" }, h("span", {}, "Repository"), picker), plans.length ? h("label", { class: "field" }, h("span", {}, "Plan"), planPicker) : null), list];
  });
}

const OVERWRITE: [string, string][] = [
  ["", "the target is empty (the API refuses a non-empty target without a mode)"],
  ["never", "never: only add what is missing"],
  ["if-changed", "if-changed: rewrite only what differs"],
  ["always", "always: replace what the snapshot has"],
];

interface TreeEntry {
  name: string;
  type: string;
  size?: number;
  mtime: string;
  mode: number;
  linktarget?: string;
}

const joinPath = (dir: string, name: string) => (dir === "/" ? `/${name}` : `${dir}/${name}`);
/** A snapshot path as an include pattern that matches it alone (and what is under it): glob characters escaped. */
const literalPattern = (p: string) => p.replace(/[\\*?[\]]/g, "\\$&");

function downloadLink(repo: Repository, snap: Snapshot, p: string, label: string): HTMLAnchorElement {
  const href = `/v1/snapshots/${encodeURIComponent(snap.id)}/download?repositoryId=${encodeURIComponent(repo.id)}&path=${encodeURIComponent(p)}`;
  return h("a", { class: "download", href, download: "" }, label);
}

/**
 * One directory of a snapshot: breadcrumbs to its parents, folders to click into,
 * a download link per file and folder, and boxes to tick what to restore — the
 * links and boxes only for a role that may restore (downloading hands out the data too).
 */
async function treeView(panel: HTMLElement, ctx: PageContext, repo: Repository, snap: Snapshot, dir: string, restoreRow: HTMLElement, selected = new Set<string>()): Promise<void> {
  const open = (p: string) => void treeView(panel, ctx, repo, snap, p, restoreRow, selected);
  const mayRestore = can(ctx.session, "restores:create");
  const parts = dir.split("/").filter(Boolean);
  const crumbs = h(
    "nav",
    { class: "breadcrumbs", "aria-label": "Folder" },
    h("button", { type: "button", class: "crumb", onclick: () => open("/") }, shortId(snap.id)),
    parts.map((part, i) => [" / ", h("button", { type: "button", class: "crumb", onclick: () => open(`/${parts.slice(0, i + 1).join("/")}`) }, part)]),
  );
  const heading = h("h2", {}, "Snapshot ", h("span", { class: "mono" }, shortId(snap.id)), ` of ${repo.name}`);
  replace(panel, heading, crumbs, h("p", { class: "loading" }, "Reading the snapshot…"));
  await section(panel, async () => {
    const listing = await api<{ entries: TreeEntry[]; total: number; truncated: boolean }>(
      "GET",
      `/v1/snapshots/${encodeURIComponent(snap.id)}/tree?repositoryId=${encodeURIComponent(repo.id)}&path=${encodeURIComponent(dir)}&limit=1000`,
    );
    const count = h("span", { id: "selected-count" }, `${selected.size} ticked`);
    const restoreTicked = h(
      "button",
      { type: "button", id: "restore-selected", disabled: selected.size === 0, onclick: () => replace(restoreRow, restoreForm(ctx, repo, snap, [...selected])) },
      "Restore ticked…",
    );
    const rows = listing.entries.map((e) => {
      const p = joinPath(dir, e.name);
      const box = h("input", {
        type: "checkbox",
        class: "select-path",
        "aria-label": `Select ${p}`,
        checked: selected.has(p),
        onchange: (ev: Event) => {
          if ((ev.target as HTMLInputElement).checked) selected.add(p);
          else selected.delete(p);
          replace(count, `${selected.size} ticked`);
          restoreTicked.disabled = selected.size === 0;
        },
      });
      const name = e.type === "dir" ? h("button", { type: "button", class: "open-dir link", onclick: () => open(p) }, `${e.name}/`) : e.type === "symlink" ? `${e.name} → ${e.linktarget ?? ""}` : e.name;
      return [
        ...(mayRestore ? [box] : []),
        h("span", { class: "mono entry-name", "data-path": p }, name),
        e.type,
        e.type === "file" ? bytes(e.size) : "",
        time(e.mtime),
        h("span", { class: "mono" }, (e.mode & 0o7777).toString(8).padStart(4, "0")),
        mayRestore && (e.type === "file" || e.type === "dir") ? downloadLink(repo, snap, p, e.type === "dir" ? "Download .tar" : "Download") : "",
      ];
    });
    return [
      heading,
      crumbs,
      mayRestore ? h("p", { class: "actions" }, downloadLink(repo, snap, dir, dir === "/" ? "Download the whole snapshot (.tar)" : "Download this folder (.tar)"), " ", restoreTicked, " ", count) : null,
      table([...(mayRestore ? [""] : []), "Name", "Type", "Size", "Modified", "Mode", ""], rows, { "aria-label": `Entries of ${dir}`, id: "snapshot-tree" }),
      listing.truncated ? h("p", { class: "empty" }, `Showing the first ${listing.entries.length} of ${listing.total} entries (GET /v1/snapshots/{id}/tree pages through the rest).`) : null,
    ];
  });
}

const CHANGE_LABEL: Record<string, string> = { added: "added", removed: "removed", changed: "changed", metadata: "metadata only" };

/** What changed from the older ticked snapshot to the newer one. */
async function diffView(panel: HTMLElement, repo: Repository, older: Snapshot, newer: Snapshot): Promise<void> {
  const heading = h("h2", {}, "Changes from ", h("span", { class: "mono" }, shortId(older.id)), " to ", h("span", { class: "mono" }, shortId(newer.id)));
  replace(panel, heading, h("p", { class: "loading" }, "Comparing…"));
  await section(panel, async () => {
    const d = await api<{ changes: { change: string; path: string; type: string; size?: number; sizeBefore?: number }[]; totals: Record<string, number>; truncated: boolean }>(
      "GET",
      `/v1/snapshots/${encodeURIComponent(newer.id)}/diff?repositoryId=${encodeURIComponent(repo.id)}&against=${encodeURIComponent(older.id)}&limit=1000`,
    );
    const t = d.totals;
    return [
      heading,
      h("p", { id: "diff-totals" }, `${t.added} added, ${t.removed} removed, ${t.changed} changed, ${t.metadata} with changed metadata only`),
      table(
        ["Change", "Path", "Type", "Size"],
        d.changes.map((c) => [
          h("span", { class: `badge change-${c.change}` }, CHANGE_LABEL[c.change] ?? c.change),
          h("span", { class: "mono" }, c.path),
          c.type,
          c.change === "changed" && c.sizeBefore !== undefined ? `${bytes(c.sizeBefore)} → ${bytes(c.size)}` : c.size !== undefined ? bytes(c.size) : "",
        ]),
        { "aria-label": "Changes", id: "snapshot-diff" },
      ),
      d.truncated ? h("p", { class: "empty" }, `Showing the first ${d.changes.length} changes; the totals count them all.`) : null,
    ];
  });
}

function restoreForm(ctx: PageContext, repo: Repository, snap: Snapshot, include: string[] = []): HTMLElement {
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
            ...(include.length ? { include: include.map(literalPattern) } : {}),
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
    include.length
      ? h("p", { id: "restore-include" }, `Only what was ticked (${include.length}): `, h("span", { class: "mono" }, include.join(", ")))
      : [h("label", { for: "restore-path" }, "Only this directory of the snapshot (optional)"), dir],
    h("label", { for: "restore-overwrite" }, "When the target holds files"),
    overwrite,
    h("label", { class: "check" }, safety, " First back up what the target holds (safety snapshot)"),
    h("label", { class: "check" }, dry, " Dry run: count, write nothing"),
    h("div", { class: "actions" }, submit),
    problem,
  );
}
