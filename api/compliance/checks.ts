import { parseRepositoryUrl } from "../../backends/url.js";
import type { Evidence, RepositoryEvidence } from "./evidence.js";

export type CheckId = "encryption" | "key-rotation" | "immutable-copy" | "three-two-one" | "retention" | "restore-verification" | "audit-chain" | "admin-tokens" | "secrets-sealed" | "tls";

/** One check of the actual configuration: passed or not, the evidence it read, and what to change when it failed. */
export interface CheckResult {
  id: CheckId;
  title: string;
  passed: boolean;
  evidence: string[];
  remediation?: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const days = (ms: number) => Math.floor(ms / DAY_MS);

function factsOrWhy(r: RepositoryEvidence): string {
  return r.factsProblem ? `no worker could describe it (${r.factsProblem})` : "no worker has described it yet";
}

/** The kind of destination and whether it leaves this host: everything but a local path does. */
function destination(url: string): { kind: string; offSite: boolean; transport: "tls" | "ssh" | "plain" | "local" } {
  const dest = parseRepositoryUrl(url) as { type: string; endpoint?: string };
  if (dest.type === "local") return { kind: "local", offSite: false, transport: "local" };
  if (dest.type === "sftp") return { kind: "sftp", offSite: true, transport: "ssh" };
  if (dest.type === "s3") return { kind: "s3", offSite: true, transport: dest.endpoint?.startsWith("http://") ? "plain" : "tls" };
  return { kind: dest.type, offSite: true, transport: "tls" };
}

function check(id: CheckId, title: string, failures: string[], evidence: string[], remediation: string): CheckResult {
  return failures.length ? { id, title, passed: false, evidence: [...failures, ...evidence], remediation } : { id, title, passed: true, evidence };
}

/** Every check, evaluated on the evidence. */
export function runChecks(e: Evidence): CheckResult[] {
  const byId = new Map(e.repositories.map((r) => [r.row.id, r]));
  const results: CheckResult[] = [];

  {
    const failures: string[] = [];
    const evidence: string[] = [];
    for (const r of e.repositories) {
      if (r.facts) evidence.push(`repository ${r.row.name} (${r.row.id}) is encrypted with ${r.facts.cipher} (reported ${r.factsReportedAt?.toISOString()})`);
      else failures.push(`repository ${r.row.name} (${r.row.id}): cipher unknown, ${factsOrWhy(r)}`);
    }
    if (!e.repositories.length) failures.push("no repository is registered");
    results.push(check("encryption", "Every repository is encrypted, with the cipher named", failures, evidence, "run a worker on the task queue so it can describe each repository (npm start runs one), then ask for the report again"));
  }
  {
    const failures: string[] = [];
    const evidence: string[] = [];
    for (const r of e.repositories) {
      if (!r.facts) failures.push(`repository ${r.row.name}: key age unknown, ${factsOrWhy(r)}`);
      else {
        const age = days(e.now.getTime() - Date.parse(r.facts.keyCreatedAt));
        const line = `repository ${r.row.name}: data key epoch ${r.facts.keyEpoch} made ${r.facts.keyCreatedAt} (${age} days ago)`;
        if (age > e.thresholds.keyRotationDays) failures.push(line);
        else evidence.push(line);
      }
    }
    results.push(check("key-rotation", `Data keys rotated within ${e.thresholds.keyRotationDays} days`, failures, evidence, "rotate the repository's data key: cairn -r <repository> key rotate"));
  }
  {
    const failures: string[] = [];
    const evidence: string[] = [];
    for (const p of e.plans) {
      const locked = [p.repositoryId, ...p.secondaryRepositoryIds].map((id) => byId.get(id)).filter((r) => r?.facts?.objectLock);
      if (locked.length) evidence.push(`plan ${p.name}: immutable copy in ${locked.map((r) => `${r!.row.name} (Object Lock ${r!.facts!.objectLock!.mode} ${r!.facts!.objectLock!.days} days)`).join(", ")}`);
      else failures.push(`plan ${p.name}: none of its repositories has Object Lock`);
    }
    if (!e.plans.length) failures.push("no plan backs anything up");
    results.push(
      check("immutable-copy", "At least one immutable copy (S3 Object Lock) of every plan", failures, evidence, "create a repository with cairn init -r s3:... --object-lock-days 30, register it, and add it to the plan's secondaryRepositoryIds"),
    );
  }
  {
    const failures: string[] = [];
    const evidence: string[] = [];
    for (const p of e.plans) {
      const dests = [p.repositoryId, ...p.secondaryRepositoryIds].map((id) => byId.get(id)).filter((r): r is RepositoryEvidence => r !== undefined);
      const offSite = dests.filter((r) => destination(r.row.url).offSite);
      const line = `plan ${p.name}: ${dests.length} destinations (${dests.map((r) => `${r.row.name}: ${destination(r.row.url).kind}`).join(", ")}), ${offSite.length} off-site`;
      if (dests.length >= 2 && offSite.length >= 1) evidence.push(line);
      else failures.push(line);
    }
    if (!e.plans.length) failures.push("no plan backs anything up");
    results.push(check("three-two-one", "3-2-1: every plan has two or more destinations, one of them off-site", failures, evidence, "add a secondary repository on another kind of storage, away from this host (s3:, sftp:, azure:, gs:), to the plan's secondaryRepositoryIds"));
  }
  {
    const failures = e.plans.filter((p) => !p.retention).map((p) => `plan ${p.name} has no retention policy`);
    const evidence = e.plans.filter((p) => p.retention).map((p) => `plan ${p.name} keeps ${JSON.stringify(p.retention)}`);
    results.push(check("retention", "A retention policy on every plan", failures, evidence, 'set one: PATCH /v1/plans/<id> {"retention": {"keepDaily": 7, "keepMonthly": 12}}'));
  }
  {
    const failures: string[] = [];
    const evidence: string[] = [];
    const planned = new Set(e.plans.map((p) => p.repositoryId));
    const since = e.now.getTime() - e.thresholds.verificationDays * DAY_MS;
    // A recovery drill that passed in the window verifies its plan's repository; the last drill of a plan failing is a failure whatever else passed.
    const drilled = new Map<string, string>();
    for (const p of e.plans) {
      const d = e.drills.get(p.id);
      if (!d) continue;
      const when = d.finishedAt ?? d.startedAt;
      if (d.outcome === "failed") failures.push(`plan ${p.name}: the last recovery drill (job ${d.jobId}, ${when}) failed: ${d.error ?? "no reason recorded"}`);
      else if (Date.parse(when) >= since) drilled.set(p.repositoryId, `plan ${p.name}: recovery drill job ${d.jobId} passed ${when}, RTO ${d.rtoSeconds} s, ${d.filesVerified} files verified`);
    }
    for (const r of e.repositories.filter((r) => planned.has(r.row.id))) {
      if (r.lastVerification) evidence.push(`repository ${r.row.name}: ${r.lastVerification.kind} job ${r.lastVerification.jobId} succeeded ${r.lastVerification.finishedAt.toISOString()}`);
      if (drilled.has(r.row.id)) evidence.push(`repository ${r.row.name}: ${drilled.get(r.row.id)}`);
      if (!r.lastVerification && !drilled.has(r.row.id)) failures.push(`repository ${r.row.name}: no successful restore (other than a dry run), verification or recovery drill in the last ${e.thresholds.verificationDays} days`);
    }
    if (!planned.size) failures.push("no plan backs anything up, so nothing was verified");
    results.push(check("restore-verification", `A successful restore verification within ${e.thresholds.verificationDays} days`, failures, evidence, "drill each plan (POST /v1/plans/<id>/drills, or schedule it with the plan's drill.cron) or restore a snapshot of each repository to a scratch directory (POST /v1/restores), at least as often as the window; fix what a failed drill names"));
  }
  {
    const a = e.audit;
    const line = `${a.events} events, ${a.checkpoints} signed checkpoints${a.lastCheckpointSeq ? ` (newest at event ${a.lastCheckpointSeq})` : ""}`;
    const failures = a.ok ? [] : [`broken${a.firstBrokenSeq !== undefined ? ` from event ${a.firstBrokenSeq}` : ""}: ${a.reason}`];
    const evidence = a.checkpoints ? [line] : [`${line}: none signed yet (the first is signed after 100 events, 5 minutes, or a restart of the API)`];
    results.push(check("audit-chain", "The audit log's chain verifies against its signed checkpoints", failures, a.ok ? evidence : [], "find out who changed the catalog (the report names the first broken event); the checkpoints in CAIRN_AUDIT_DIR say what was there"));
  }
  {
    const failures: string[] = [];
    const evidence: string[] = [];
    if (e.environmentAdminToken) failures.push("CAIRN_API_TOKEN is set: an admin token that never expires");
    for (const t of e.adminTokens) {
      if (!t.expiresAt) failures.push(`admin token "${t.name}" (${t.id}) never expires`);
      else if (t.expiresAt <= e.now) failures.push(`admin token "${t.name}" (${t.id}) expired ${t.expiresAt.toISOString()} but is not revoked`);
      else evidence.push(`admin token "${t.name}" expires ${t.expiresAt.toISOString()}`);
    }
    results.push(
      check("admin-tokens", "No expired or never-expiring admin tokens in use", failures, evidence, "create admin tokens with an expiresAt (POST /v1/tokens), revoke the others (DELETE /v1/tokens/<id>), and unset CAIRN_API_TOKEN"),
    );
  }
  {
    const failures = e.unopenable.map((what) => `repository ${what} is not sealed with the platform key`);
    const evidence = [`repository passwords and credentials are stored sealed with the platform key (epoch ${e.secretKeyEpoch}); its file is refused when others may read it`];
    results.push(check("secrets-sealed", "Secrets stored sealed", failures, evidence, "register the repositories again with their passwords, or give the API the platform key they were sealed with"));
  }
  {
    const failures: string[] = [];
    const evidence: string[] = [];
    for (const r of e.repositories) {
      const d = destination(r.row.url);
      if (d.transport === "local") continue;
      const line = `repository ${r.row.name}: ${r.row.url.replace(/\/\/[^@/]*@/, "//")} over ${d.transport === "ssh" ? "SSH" : d.transport === "tls" ? "TLS" : "plain HTTP"}`;
      if (d.transport === "plain") failures.push(line);
      else evidence.push(line);
    }
    results.push(check("tls", "TLS (or SSH) to every remote destination", failures, evidence, "use an https:// endpoint for S3 (s3:https://host/bucket/prefix) and register the repository again"));
  }
  return results;
}
