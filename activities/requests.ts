import { ApplicationFailure } from "@temporalio/common";
import { BackendError } from "../backends/backend.js";
import { parseRepositoryUrl } from "../backends/url.js";
import { CairnError, RepositoryNotFoundError, WrongPasswordError } from "../engine/errors.js";
import { Repository } from "../engine/repository.js";
import { loadSnapshots, type SnapshotEntry } from "../engine/snapshot.js";
import { subtreeAt, TreeLoader } from "../engine/tree.js";
import { realPathRefusal } from "../policy/paths.js";
import {
  PERMANENT_FAILURES,
  type Answer,
  type CheckSourcesInput,
  type DescribeRepositoryInput,
  type ListSnapshotsInput,
  type MysqlRecoveryWindow,
  type MysqlRecoveryWindowInput,
  type MysqlRestoreInput,
  type MysqlRestorePreview,
  type PreparedRestore,
  type PrepareRestoreInput,
  type RefusalReason,
  type RecoveryWindow,
  type RecoveryWindowInput,
  type RegisterRepositoryInput,
  type RegisterRepositoryResult,
  type RepositoryFacts,
  type SnapshotListing,
  type SnapshotPage,
} from "../workflows/messages.js";
import { backendFor, unsealTarget, withRepository, type ActivityDeps } from "./repository.js";
import { holdsFiles } from "./restore.js";
import { recoveryWindowOf } from "./recovery.js";
import { mysqlRecoveryWindowOf, previewMysqlRestore } from "./mysql.js";

export const refuse = (reason: RefusalReason, message: string, field?: string): Answer<never> => ({ ok: false, refusal: { reason, message, ...(field ? { field } : {}) } });

/**
 * What the API asks of a worker so that it never opens a repository or looks at a
 * path itself: registering a repository, listing snapshots, preparing a restore,
 * checking a plan's sources. Each answers at once: a value, or a refusal the caller
 * can act on; only what the caller cannot fix fails.
 */
export function requestActivities(deps: ActivityDeps) {
  return {
    /**
     * Creates the repository when nothing is at its location, otherwise opens it to
     * prove the password and credentials. A local directory holding other files is
     * refused: a repository there would mix with someone's files.
     */
    async registerRepository(input: RegisterRepositoryInput): Promise<Answer<RegisterRepositoryResult>> {
      const { url } = input.repository;
      return answering(url, async () => {
        const { password, credentials } = unsealTarget(input.repository, deps);
        const backend = await backendFor(input.repository, credentials, deps);
        try {
          const created = !(await backend.exists("config"));
          const dest = parseRepositoryUrl(url);
          if (created && dest.type === "local" && (await holdsFiles(dest.path))) {
            return refuse("notRepository", `${url} holds files but no Cairn repository; give a new or empty directory to create one, or the path of an existing repository`, "url");
          }
          if (created) await backend.ensureContainer?.();
          const repo = created ? await Repository.init(backend, password, { threads: 0 }) : await Repository.open(backend, password, { threads: 0 });
          await repo.close();
          return { ok: true, value: { created } };
        } finally {
          await backend.close?.();
        }
      });
    },

    /** A page of the repository's snapshots in (time, id) order, read from the repository itself. */
    async listSnapshots(input: ListSnapshotsInput): Promise<Answer<SnapshotPage>> {
      return answering(input.repository.url, async () => {
        const all = await withSnapshots(input.repository, deps, async (found) => found);
        all.sort((a, b) => (a.time === b.time ? (a.id < b.id ? -1 : 1) : a.time < b.time ? -1 : 1));
        const { after } = input;
        const start = after ? all.findIndex((s) => s.time > after.time || (s.time === after.time && s.id > after.id)) : 0;
        const from = start < 0 ? all.length : start;
        return { ok: true, value: { snapshots: all.slice(from, from + input.limit).map(listing), more: from + input.limit < all.length } };
      });
    },

    /**
     * Checks a restore before it starts: the target is allowed by the policy (links
     * followed), the snapshot reference names one snapshot — in the repository, or
     * when that cannot be reached in the first fallback that can be — and a target
     * that holds anything comes with an overwrite mode.
     */
    async prepareRestore(input: PrepareRestoreInput): Promise<Answer<PreparedRestore>> {
      const refusal = await pathAnswer(() => realPathRefusal(deps.policy, "restore", input.target), "target");
      if (refusal) return refusal;
      let firstProblem: Answer<never> | undefined;
      for (const candidate of [input.repository, ...input.fallbacks]) {
        const found = await answering(candidate.url, async (): Promise<Answer<PreparedRestore>> => {
          const picked = await withSnapshots(candidate, deps, async (all, repo) => {
            const matching = input.snapshotRef === "latest" ? all.slice(-1) : all.filter((s) => s.id.startsWith(input.snapshotRef));
            if (matching.length !== 1) return matching.length;
            if (input.path) {
              const missing = await subtreeAt(new TreeLoader(repo), matching[0].tree, input.path).then(
                () => undefined,
                (err: unknown) => (err instanceof CairnError ? err.message : Promise.reject(err)),
              );
              if (missing) return `snapshot ${matching[0].id.slice(0, 8)}: ${missing}; give a directory it holds (GET /v1/snapshots lists its paths)`;
            }
            return matching[0];
          });
          if (typeof picked === "string") return refuse("snapshotNotFound", picked, "path");
          if (picked === 0) return refuse("snapshotNotFound", `repository ${candidate.id} has no snapshot ${input.snapshotRef}; list them with GET /v1/snapshots?repositoryId=${candidate.id}`, "snapshotId");
          if (typeof picked === "number") return refuse("snapshotAmbiguous", `${picked} snapshots start with ${input.snapshotRef}; give more characters`, "snapshotId");
          const targetInUse = await holdsFiles(input.target);
          if (targetInUse && !input.overwrite) {
            return refuse(
              "targetNotEmpty",
              `the target ${input.target} holds files; say what to do with them: overwrite "always" (replace what the snapshot has, after a safety snapshot of the target), ` +
                `"if-changed" (rewrite only what differs, after a safety snapshot) or "never" (only add what is missing)`,
              "overwrite",
            );
          }
          const totalBytes = picked.summary?.totalBytes;
          return {
            ok: true,
            value: { snapshotId: picked.id, snapshot: { time: picked.time, host: picked.host, paths: picked.paths }, resolvedIn: candidate.id, targetInUse, ...(totalBytes !== undefined ? { totalBytes } : {}) },
          };
        });
        if (found.ok || !["repositoryMissing", "unusable"].includes(found.refusal.reason)) return found;
        firstProblem ??= found;
      }
      return firstProblem!;
    },

    /** What a repository is made of (cipher, Object Lock, key age), for compliance reports. */
    async describeRepository(input: DescribeRepositoryInput): Promise<Answer<RepositoryFacts>> {
      return answering(input.repository.url, async () => {
        return withRepository(input.repository, deps, async (repo) => {
          const { cipher, objectLock, created } = repo.config;
          return {
            ok: true as const,
            value: { cipher, objectLock: objectLock ? { mode: objectLock.mode, days: objectLock.days } : null, keyEpoch: repo.epoch, keyCreatedAt: repo.epochCreatedAt, createdAt: created },
          };
        });
      });
    },

    /** What a physical plan's repository can recover (its base backups and archived WAL). */
    async recoveryWindow(input: RecoveryWindowInput): Promise<Answer<RecoveryWindow>> {
      return answering(input.repository.url, () => withSnapshots(input.repository, deps, async (all, repo) => ({ ok: true as const, value: await recoveryWindowOf(repo, all, input.planId) })));
    },

    /** What a physical MySQL / MariaDB plan's repository can recover (its backups and archived binary logs). */
    async mysqlRecoveryWindow(input: MysqlRecoveryWindowInput): Promise<Answer<MysqlRecoveryWindow>> {
      return answering(input.repository.url, async () => ({ ok: true as const, value: await mysqlRecoveryWindowOf(input, deps) }));
    },

    /** What a MySQL / MariaDB logical restore would restore, drop or be refused for, read from the dump and the plan's server. */
    async previewMysqlRestore(input: MysqlRestoreInput): Promise<Answer<MysqlRestorePreview>> {
      return answering(input.repository.url, () => previewMysqlRestore(input, deps));
    },

    /** Checks a plan's source paths against the policy, links followed; a path that does not exist yet is judged by its nearest existing parent. */
    async checkSources(input: CheckSourcesInput): Promise<Answer<null>> {
      for (const [i, p] of input.paths.entries()) {
        const refusal = await pathAnswer(() => realPathRefusal(deps.policy, "source", p), `source.paths.${i}`);
        if (refusal) return refusal;
      }
      return { ok: true, value: null };
    },
  };
}

/** Runs `fn` on the repository's snapshots (oldest first) with the repository open. */
export async function withSnapshots<T>(target: PrepareRestoreInput["repository"], deps: ActivityDeps, fn: (all: SnapshotEntry[], repo: Repository) => Promise<T>): Promise<T> {
  return withRepository(target, deps, async (repo) => fn(await loadSnapshots(repo), repo));
}

function listing(s: SnapshotEntry): SnapshotListing {
  return { id: s.id, time: s.time, host: s.host, paths: s.paths, tags: s.tags, ...(s.parent ? { parent: s.parent } : {}), ...(s.summary ? { summary: { ...s.summary } } : {}) };
}

/** A policy refusal of a path as an answer, or undefined when the path is allowed; a path whose links cannot be followed is refused too. */
async function pathAnswer(check: () => Promise<{ message: string } | undefined>, field: string): Promise<Answer<never> | undefined> {
  try {
    const refusal = await check();
    return refusal ? refuse("policy", refusal.message, field) : undefined;
  } catch (err) {
    return refuse("policy", `cannot tell where ${field} leads (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); the policy refuses what it cannot check`, field);
  }
}

/** Runs `fn`; what the caller can fix (a refused location, a wrong password, a destination that fails) becomes a refusal, anything else fails. */
export async function answering<T>(url: string, fn: () => Promise<Answer<T>>): Promise<Answer<T>> {
  try {
    return await fn();
  } catch (err) {
    const reason = reasonOf(err);
    if (!reason) throw err;
    if (reason === "unusable" && err instanceof BackendError && !err.reason) console.warn(`cairn worker: ${url}: ${err.message}`);
    return refuse(reason, messageOf(reason, err, url), reason === "policy" || reason === "notRepository" ? "url" : undefined);
  }
}

function reasonOf(err: unknown): RefusalReason | undefined {
  const type = err instanceof ApplicationFailure ? err.type : err instanceof CairnError ? err.name : undefined;
  if (type === PERMANENT_FAILURES.policyRefused) return "policy";
  if (type === PERMANENT_FAILURES.wrongPassword) return "wrongPassword";
  if (type === PERMANENT_FAILURES.repositoryNotFound) return "repositoryMissing";
  if (type === PERMANENT_FAILURES.unsupportedRepository || type === PERMANENT_FAILURES.invalidRequest || err instanceof BackendError || err instanceof CairnError) return "unusable";
  return undefined;
}

/**
 * The sentence a caller sees. A destination's own answer can name internal hosts
 * or echo what it received, so only messages a backend wrote itself (those with
 * a reason) are shown; the rest become a sentence of ours, and the full error
 * goes to the worker's log.
 */
function messageOf(reason: RefusalReason, err: unknown, url: string): string {
  if (reason === "wrongPassword" || err instanceof WrongPasswordError) return `the password does not open the repository at ${url}; give the password it was created with`;
  if (reason === "repositoryMissing" || err instanceof RepositoryNotFoundError) return `there is no Cairn repository at ${url} any more; check that its disk is mounted, or register it again`;
  if (!(err instanceof BackendError)) return (err as Error).message;
  const check = parseRepositoryUrl(url).type === "local" ? "the path and its permissions on the workers" : "the location and its credentials";
  if (err.reason === "host-key") return `cannot use ${url}: the workers do not trust the SSH server's host key; give a known_hosts file that lists it in CAIRN_SFTP_KNOWN_HOSTS`;
  if (err.reason === "access-denied") return `${err.message} (those in the repository's credentials)`;
  if (err.reason) return err.message;
  if (err.kind === "transient") return `cannot use ${url}: the destination did not answer or failed (it may be down, or unreachable from the workers); retry later, and check ${check}`;
  if (err.kind === "not-found") return `cannot use ${url}: not found; check ${check}`;
  return `cannot use ${url}: the destination refused the request; check ${check} (the worker's log has its answer)`;
}
