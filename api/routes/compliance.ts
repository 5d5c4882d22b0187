import { createRoute, z } from "@hono/zod-openapi";
import type { AppDeps } from "../app.js";
import { runChecks, type CheckResult } from "../compliance/checks.js";
import { DEFAULT_THRESHOLDS, gatherEvidence, type ComplianceThresholds } from "../compliance/evidence.js";
import { CONTROLS, FRAMEWORKS, type Framework } from "../compliance/frameworks.js";
import { access, json, problems, router } from "../openapi.js";

const Check = z
  .object({
    id: z.string(),
    title: z.string(),
    passed: z.boolean(),
    evidence: z.array(z.string()).openapi({ description: "What was looked at: repositories, plans, jobs, tokens, the audit log." }),
    remediation: z.string().optional().openapi({ description: "What to change, when the check failed." }),
  })
  .openapi("ComplianceCheck");

const Report = z
  .object({
    framework: z.enum(FRAMEWORKS),
    name: z.string(),
    status: z.enum(["COMPLIANT", "NON_COMPLIANT"]),
    generatedAt: z.string(),
    controls: z.array(z.object({ id: z.string(), title: z.string(), status: z.enum(["PASS", "FAIL"]), checks: z.array(Check) })),
    failing: z.array(z.object({ control: z.string(), check: z.string(), remediation: z.string() })).openapi({ description: "Each failing control with each failing check and what to change." }),
  })
  .openapi("ComplianceReport");

const report = createRoute({
  method: "get",
  path: "/compliance/{framework}",
  operationId: "getComplianceReport",
  summary: "Map a framework's backup-relevant controls to checks of the actual configuration, with evidence: JSON, or a printable HTML page",
  tags: ["compliance"],
  ...access("compliance:read"),
  request: {
    params: z.object({ framework: z.enum(FRAMEWORKS).openapi({ param: { name: "framework", in: "path" } }) }),
    query: z.object({ format: z.enum(["json", "html"]).optional().openapi({ description: "html for a printable page; the Accept header (text/html) chooses too." }) }),
  },
  responses: {
    200: { description: "The report.", content: { "application/json": { schema: Report }, "text/html": { schema: z.string() } } },
    ...problems(400),
  },
});

/** Compliance reports: evidence gathered now (workers describe the repositories), checked, and mapped to each framework's controls. */
export function complianceRoutes(deps: AppDeps, thresholds: ComplianceThresholds = DEFAULT_THRESHOLDS) {
  return router().openapi(report, async (c) => {
    const { framework } = c.req.valid("param");
    const { format } = c.req.valid("query");
    const checks = new Map(runChecks(await gatherEvidence(deps, c.get("audit"), thresholds)).map((r) => [r.id, r]));
    const body = build(framework, checks);
    if (format === "html" || (!format && /text\/html/.test(c.req.header("Accept") ?? ""))) return c.html(render(body), 200);
    return c.json(body, 200);
  });
}

type ReportBody = z.infer<typeof Report>;

function build(framework: Framework, checks: Map<string, CheckResult>): ReportBody {
  const { name, controls } = CONTROLS[framework];
  const rows = controls.map((control) => {
    const results = control.checks.map((id) => checks.get(id)!);
    return { id: control.id, title: control.title, status: results.every((r) => r.passed) ? ("PASS" as const) : ("FAIL" as const), checks: results };
  });
  const failing = rows.flatMap((row) => row.checks.filter((r) => !r.passed).map((r) => ({ control: row.id, check: r.id, remediation: r.remediation! })));
  return { framework, name, status: failing.length ? "NON_COMPLIANT" : "COMPLIANT", generatedAt: new Date().toISOString(), controls: rows, failing };
}

const escape = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

/** A self-contained page that prints well: no scripts, no outside resources. */
function render(r: ReportBody): string {
  const controls = r.controls
    .map(
      (control) => `<section class="${control.status.toLowerCase()}">
  <h2>${escape(control.id)} — ${escape(control.title)} <span class="badge">${control.status}</span></h2>
  ${control.checks
    .map(
      (check) => `<div class="check"><h3>${check.passed ? "✔" : "✘"} ${escape(check.title)}</h3>
    <ul>${check.evidence.map((e) => `<li>${escape(e)}</li>`).join("")}</ul>
    ${check.remediation ? `<p class="fix"><strong>To change:</strong> ${escape(check.remediation)}</p>` : ""}</div>`,
    )
    .join("\n  ")}
</section>`,
    )
    .join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(r.name)}: ${r.status}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;color:#111}
h1{margin-bottom:.2rem} .status{font-size:1.3rem;font-weight:700} .COMPLIANT{color:#06602a} .NON_COMPLIANT{color:#a00}
section{border:1px solid #ccc;border-radius:6px;padding:.5rem 1rem;margin:1rem 0;break-inside:avoid}
section.fail{border-color:#a00} .badge{font-size:.8rem;padding:.1rem .4rem;border-radius:4px;background:#eee}
section.fail .badge{background:#fdd} section.pass .badge{background:#dfd} h3{font-size:1rem;margin:.6rem 0 .2rem} .fix{background:#fff6e0;padding:.3rem .5rem}
@media print{body{margin:0;max-width:none}}
</style></head>
<body>
<h1>${escape(r.name)}</h1>
<p class="status ${r.status}">${r.status}</p>
<p>Generated ${escape(r.generatedAt)} by Cairn from the platform's configuration, its workers' reports on each repository, its jobs and its audit log.</p>
${controls}
</body></html>
`;
}
