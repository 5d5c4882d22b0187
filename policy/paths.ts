import { promises as fs } from "node:fs";
import * as path from "node:path";
import { describeSetting, PolicyRefusal, within, type ExecutionPolicy, type PolicySetting, type ProtectedPath } from "./policy.js";

/**
 * What a path is for: a plan reads a source; a restore writes its target; a local
 * repository is written and read; a recovery drill writes its scratch copy; a
 * failover stops, promotes or rewrites it (the old primary's and the standby's
 * data directories, PgBouncer's configuration).
 */
export type PathUse = "source" | "restore" | "repository" | "drill" | "failover";

const ROOTS: Record<PathUse, Extract<PolicySetting, "sourceRoots" | "restoreRoots" | "repositoryRoots" | "drillDir" | "failoverPaths">> = {
  source: "sourceRoots",
  restore: "restoreRoots",
  repository: "repositoryRoots",
  drill: "drillDir",
  failover: "failoverPaths",
};

/** The directories a use is allowed in. */
function rootsOf(policy: ExecutionPolicy, use: PathUse): string[] {
  return use === "drill" ? [policy.drillDir] : policy[ROOTS[use] as Exclude<PolicySetting, "drillDir">] as string[];
}

const NAMES: Record<PathUse, { what: string; roots: string; fix: string }> = {
  source: { what: "source", roots: "source roots", fix: "add it there to allow it" },
  restore: { what: "restore target", roots: "restore roots", fix: "restore under one of them, or add the directory there" },
  repository: { what: "local repository", roots: "repository roots", fix: "put the repository under one of them, or add the directory there" },
  drill: { what: "drill scratch directory", roots: "drill directory", fix: "drills write only there; set CAIRN_DRILL_DIR to move it" },
  failover: { what: "failover path", roots: "failover paths", fix: "add it there to allow it" },
};

/**
 * Why the policy refuses `p` for `use`, judged on the path as written (`..`
 * resolved, no file system access): what the API can tell on its own. Workers
 * judge the real path with realPathRefusal. `what` names the path in the message
 * when the use's own name is too vague (which of a failover's paths it is). A
 * failover path must be absolute: it is resolved on the worker's host, not
 * against the caller's directory.
 */
export function pathRefusal(policy: ExecutionPolicy, use: PathUse, p: string, what = NAMES[use].what): PolicyRefusal | undefined {
  if (use === "failover" && !path.isAbsolute(p)) return new PolicyRefusal(ROOTS[use], `${what} ${p} is not an absolute path; give it as one`);
  const resolved = path.resolve(p);
  return protectionRefusal(use, resolved, p, policy.protectedPaths, what) ?? rootRefusal(policy, use, resolved, p, rootsOf(policy, use), what);
}

/**
 * Why the policy refuses `p` for `use` once symbolic links are followed: the path
 * as written and the path it really names must both be allowed, so a link from
 * inside a root to outside it is refused. A path that does not exist yet is judged
 * by its nearest existing parent.
 */
export async function realPathRefusal(policy: ExecutionPolicy, use: PathUse, p: string, what = NAMES[use].what): Promise<PolicyRefusal | undefined> {
  const lexical = pathRefusal(policy, use, p, what);
  if (lexical) return lexical;
  const real = await realPath(path.resolve(p));
  const protectedPaths = await realProtected(policy.protectedPaths);
  const shown = real === path.resolve(p) ? p : `${p} (really ${real})`;
  return protectionRefusal(use, real, shown, protectedPaths, what) ?? rootRefusal(policy, use, real, shown, await Promise.all(rootsOf(policy, use).map(realPath)), what);
}

function protectionRefusal(use: PathUse, resolved: string, shown: string, protectedPaths: ProtectedPath[], what = NAMES[use].what): PolicyRefusal | undefined {
  for (const guarded of protectedPaths) {
    if (use === "source") {
      if (within(resolved, guarded.path)) return new PolicyRefusal("never", `${what} ${shown} is inside ${guarded.what} (${guarded.path}), which no plan may read whatever the policy says; back up another directory`);
      continue;
    }
    if (within(guarded.path, resolved)) return new PolicyRefusal("never", `${what} ${shown} would write over ${guarded.what} (${guarded.path}), which nothing may replace whatever the policy says; choose another directory`);
    if (!guarded.writableInside && within(resolved, guarded.path)) return new PolicyRefusal("never", `${what} ${shown} is inside ${guarded.what} (${guarded.path}), which nothing may write whatever the policy says; choose another directory`);
  }
  return undefined;
}

function rootRefusal(policy: ExecutionPolicy, use: PathUse, resolved: string, shown: string, roots: string[], what = NAMES[use].what): PolicyRefusal | undefined {
  if (roots.some((root) => within(resolved, root))) return undefined;
  const setting = ROOTS[use];
  const { roots: name, fix } = NAMES[use];
  return new PolicyRefusal(setting, `${what} ${shown} is outside the allowed ${name} (${describeSetting(policy, setting)}); ${fix}`);
}

/** The path with every symbolic link resolved; for a path that does not exist, its nearest existing parent's real path joined with the rest. */
export async function realPath(p: string): Promise<string> {
  try {
    return await fs.realpath(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const parent = path.dirname(p);
    if ((code === "ENOENT" || code === "ENOTDIR") && parent !== p) return path.join(await realPath(parent), path.basename(p));
    throw err;
  }
}

/** The protected paths with their real paths added (a data directory reached through a link is protected under both names). */
async function realProtected(list: ProtectedPath[]): Promise<ProtectedPath[]> {
  const out = [...list];
  for (const guarded of list) {
    const real = await realPath(guarded.path).catch(() => guarded.path);
    if (real !== guarded.path) out.push({ ...guarded, path: real });
  }
  return out;
}

/** The identity of a file: hard links share it. */
export interface FileIdentity {
  dev: bigint | number;
  ino: bigint | number;
}

/**
 * Decides, entry by entry during a backup, whether the archiver may read what it
 * opened: returns why not, or undefined. For a plan (`source`): inside a source
 * root and outside every protected path. For a safety snapshot of a restore
 * target (`restore`): inside a restore root and outside what nothing may write.
 * Protected files are also recognised by identity, so a hard link to the secret
 * key is refused wherever it is.
 */
export async function readGuard(policy: ExecutionPolicy, use: "source" | "restore"): Promise<(realPath: string, id: FileIdentity) => string | undefined> {
  const protectedPaths = await realProtected(policy.protectedPaths);
  const roots = [...new Set([...rootsOf(policy, use), ...(await Promise.all(rootsOf(policy, use).map((r) => realPath(r).catch(() => r))))])];
  const identities = new Map<string, ProtectedPath>();
  for (const guarded of protectedPaths) {
    const st = await fs.stat(guarded.path, { bigint: true }).catch(() => undefined);
    if (st?.isFile()) identities.set(`${st.dev}:${st.ino}`, guarded);
  }
  return (real, id) => {
    const twin = identities.get(`${BigInt(id.dev)}:${BigInt(id.ino)}`);
    if (twin) return `refused by the execution policy: it is ${twin.what} (${twin.path}) under another name`;
    const refusal = protectionRefusal(use === "source" ? "source" : "restore", real, real, protectedPaths);
    if (refusal) return `refused by the execution policy: ${refusal.message}`;
    if (!roots.some((root) => within(real, root))) return `refused by the execution policy: it really is ${real}, outside the allowed ${NAMES[use].roots} (${describeSetting(policy, ROOTS[use])})`;
    return undefined;
  };
}
