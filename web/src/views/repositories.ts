import { api, hasRoute } from "../api.js";
import { h, replace } from "../dom.js";
import { bytes, time } from "../format.js";
import { field } from "../form.js";
import type { Repository } from "../types.js";
import { can, missingRoute, problemText, section, table, type PageContext } from "../ui.js";

const GIB = 1024 ** 3;

/** The credential variables a destination's backend reads (RepositoryInput.credentials), offered as names to pick. */
const CREDENTIAL_NAMES = [
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_REGION",
  "AWS_SESSION_TOKEN",
  "CAIRN_S3_STORAGE_CLASS",
  "AZURE_STORAGE_CONNECTION_STRING",
  "AZURE_STORAGE_ACCOUNT",
  "AZURE_STORAGE_KEY",
  "CAIRN_GCS_KEY",
  "CAIRN_GCS_ENDPOINT",
  "CAIRN_SFTP_PASSWORD",
  "CAIRN_SFTP_KEY",
  "CAIRN_SFTP_KNOWN_HOSTS",
];

/**
 * Repositories in registration order: where each is, its size against its quota, its limit of jobs at
 * once and the names of its stored credentials; an admin registers one (POST /v1/repositories: created
 * when the location is empty) and changes a quota or limit (PATCH /v1/repositories/{id}).
 */
export async function repositoriesPage(root: HTMLElement, ctx: PageContext): Promise<void> {
  const list = h("section", { id: "repositories" });
  const mayWrite = can(ctx.session, "repositories:write");
  replace(root, h("div", { class: "page-head" }, h("h1", {}, "Repositories")), list, mayWrite ? registerForm(ctx, () => void load()) : null);
  async function load(): Promise<void> {
    await section(list, async () => {
      if (!(await hasRoute("GET /v1/repositories"))) return missingRoute("GET /v1/repositories", "repositories");
      const { repositories } = await api<{ repositories: Repository[] }>("GET", "/v1/repositories?limit=500");
      if (!repositories.length) return h("p", { class: "empty" }, mayWrite ? "No repository yet: register the first one below." : "No repository yet: an admin registers one.");
      return table(
        ["Repository", "Location", "Size", "Quota", "Jobs at once", "Credentials", "Registered", ...(mayWrite ? [""] : [])],
        repositories.map((r) => [
          h("a", { href: `#/snapshots/${encodeURIComponent(r.id)}`, class: "repository-name", "data-repository": r.name, title: "Its snapshots" }, r.name),
          h("span", { class: "mono" }, r.url),
          r.usage ? h("span", { title: `measured ${time(r.usage.at)}` }, bytes(r.usage.bytes)) : h("span", { class: "hint" }, "after the first backup"),
          r.quotaBytes ? [bytes(r.quotaBytes), r.usage ? ` (${Math.round((r.usage.bytes / r.quotaBytes) * 100)}% used)` : ""] : "none",
          r.maxConcurrentJobs === null ? "no limit" : String(r.maxConcurrentJobs),
          r.credentials.length ? r.credentials.join(", ") : r.useEnvironmentCredentials ? "the workers' own" : "none",
          time(r.createdAt),
          ...(mayWrite ? [limitsForm(ctx, r, () => void load())] : []),
        ]),
        { "aria-label": "Repositories", class: "cards-on-phone" },
      );
    });
  }
  await load();
}

/** A quota in GiB ("" when none) as the API's bytes, or null to remove it. */
const quotaOf = (value: string) => (value.trim() === "" ? null : Math.round(Number(value) * GIB));

function registerForm(ctx: PageContext, reload: () => void): HTMLElement {
  const name = h("input", { id: "repository-name", required: true, maxlength: 100, autocomplete: "off", spellcheck: "false", placeholder: "offsite" });
  const url = h("input", { id: "repository-url", required: true, size: 50, maxlength: 4096, spellcheck: "false", placeholder: "/srv/backups/repo, s3:bucket/prefix, sftp:user@host:/path" });
  const password = h("input", { id: "repository-password", type: "password", required: true, autocomplete: "new-password" });
  const quota = h("input", { id: "repository-quota", type: "number", min: 0, step: "any", placeholder: "none" });
  const jobs = h("input", { id: "repository-jobs", type: "number", min: 1, step: 1, placeholder: "no limit" });
  const envCredentials = h("input", { id: "repository-env-credentials", type: "checkbox" });
  const credentials = h("div", { id: "repository-credentials" });
  const names = h("datalist", { id: "credential-names" }, CREDENTIAL_NAMES.map((n) => h("option", { value: n })));
  const credentialRow = () => {
    const row = h(
      "div",
      { class: "inline-form credential" },
      field("Variable", h("input", { class: "credential-name", list: "credential-names", size: 30, spellcheck: "false", autocomplete: "off" })),
      field("Value (stored sealed, never shown again)", h("input", { class: "credential-value", type: "password", size: 30, autocomplete: "off" })),
      h("button", { type: "button", class: "link", onclick: () => row.remove() }, "Remove"),
    );
    return row;
  };
  const problem = h("p", { class: "problem", role: "alert", id: "repository-problem" });
  const submit = h("button", { type: "submit" }, "Register");
  const form = h(
    "form",
    {
      id: "repository-form",
      class: "restore-form",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        replace(problem);
        const secrets: Record<string, string> = {};
        for (const row of credentials.querySelectorAll<HTMLElement>(".credential")) {
          const key = row.querySelector<HTMLInputElement>(".credential-name")!.value.trim();
          if (key) secrets[key] = row.querySelector<HTMLInputElement>(".credential-value")!.value;
        }
        const q = quotaOf(quota.value);
        const body = {
          name: name.value.trim(),
          url: url.value.trim(),
          password: password.value,
          ...(Object.keys(secrets).length ? { credentials: secrets } : {}),
          ...(q !== null ? { quotaBytes: q } : {}),
          ...(jobs.value ? { maxConcurrentJobs: Number(jobs.value) } : {}),
          ...(envCredentials.checked ? { useEnvironmentCredentials: true } : {}),
        };
        submit.disabled = true;
        try {
          const created = await api<{ id: string; created: boolean }>("POST", "/v1/repositories", body);
          ctx.notify(created.created ? `Repository ${body.name} created at ${body.url}.` : `Repository ${body.name} registered: the repository at ${body.url} opened with that password.`, "info");
          form.reset();
          replace(credentials);
          reload();
        } catch (err) {
          replace(problem, problemText(err));
        } finally {
          password.value = "";
          submit.disabled = false;
        }
      },
    },
    h("h2", {}, "Register a repository"),
    h("p", { class: "hint" }, "An empty location is initialised; an existing repository is opened with the password. The password and credentials are stored sealed with the platform key and never shown again. Local paths must lie under the execution policy's repository roots."),
    field("Name", name),
    field("Location", url),
    field("Password", password),
    h("div", { class: "inline-form" }, field("Quota (GiB)", quota), field("Jobs at once", jobs)),
    names,
    credentials,
    h("div", {}, h("button", { type: "button", class: "link", id: "add-credential", onclick: () => credentials.append(credentialRow()) }, "Add a credential")),
    h("label", { class: "check" }, envCredentials, " Let the workers use their own credentials too (environment, ~/.aws, ~/.ssh)"),
    h("div", { class: "actions" }, submit),
    problem,
  );
  return form;
}

/** An admin's quota and job limit of one repository (PATCH /v1/repositories/{id}); empty removes them. */
function limitsForm(ctx: PageContext, r: Repository, reload: () => void): HTMLElement {
  const quota = h("input", { type: "number", min: 0, step: "any", size: 6, class: "limit-quota", value: r.quotaBytes ? +(r.quotaBytes / GIB).toFixed(3) : "", placeholder: "none", "aria-label": `Quota of ${r.name} in GiB` });
  const jobs = h("input", { type: "number", min: 1, step: 1, size: 4, class: "limit-jobs", value: r.maxConcurrentJobs ?? "", placeholder: "no limit", "aria-label": `Jobs at once on ${r.name}` });
  return h(
    "details",
    { class: "repository-limits" },
    h("summary", {}, "Limits"),
    h(
      "form",
      {
        class: "inline-form",
        "data-repository": r.name,
        onsubmit: async (e: Event) => {
          e.preventDefault();
          try {
            await api("PATCH", `/v1/repositories/${encodeURIComponent(r.id)}`, { quotaBytes: quotaOf(quota.value), maxConcurrentJobs: jobs.value ? Number(jobs.value) : null });
            ctx.notify(`Limits of ${r.name} saved.`, "info");
            reload();
          } catch (err) {
            ctx.notify(problemText(err));
          }
        },
      },
      field("Quota (GiB)", quota),
      field("Jobs at once", jobs),
      h("button", { type: "submit" }, "Save"),
    ),
  );
}
