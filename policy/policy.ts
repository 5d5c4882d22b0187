/**
 * The execution policy: what whoever deploys Cairn lets plans read, restores
 * write and repositories reach. The API checks it before it asks a worker for
 * anything, and every worker checks it again before it touches a path or opens a
 * connection, so a workflow started in Temporal by hand is held to it too.
 *
 * Set by environment variables (`:`-separated directories, `,`-separated lists)
 * or a JSON file named by CAIRN_POLICY_FILE; a variable wins over the file, the
 * file over the defaults. Give the API and every worker the same policy.
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import * as path from "node:path";
import type { Destination } from "../backends/url.js";
import { parseCidr } from "./addresses.js";

export type DestinationKind = Destination["type"];
export const DESTINATION_KINDS: readonly DestinationKind[] = ["local", "s3", "sftp", "azure", "gs"];

/** A path no plan may read and no restore or repository may write, whatever the roots allow. */
export interface ProtectedPath {
  path: string;
  /** What it is, for messages: "the platform secret key". */
  what: string;
  /** True for the data directory: restores, repositories and drills may write inside it (its restores/, repositories/ and drills/ folders), never over it. */
  writableInside?: boolean;
}

export interface ExecutionPolicy {
  /** Directories plans may back up. */
  sourceRoots: string[];
  /** Directories restores may write into. */
  restoreRoots: string[];
  /** Directories local repositories may live in. */
  repositoryRoots: string[];
  /** Where recovery drills make their scratch copies (a fresh directory each, removed after): the only place a drill writes. */
  drillDir: string;
  /** The worker's own secrets and state, and /proc; never readable by a plan. */
  protectedPaths: ProtectedPath[];
  destinationKinds: DestinationKind[];
  /** `*` (any public host), host names, `*.example.com`, addresses and CIDR blocks. A host named here may be private or loopback. */
  destinationHosts: string[];
  allowLoopback: boolean;
  allowPrivateNetworks: boolean;
  /** Restores may give files their recorded owners (when the worker runs as root). */
  restoreOwners: boolean;
  /** Restores may keep setuid and setgid bits. */
  restoreSetid: boolean;
  /** Programs a failover may run as its fencing or cut-over hook (absolute paths; the hook's arguments are free). None by default. */
  hookCommands: string[];
  /** Directories and files a failover may act on: the old primary's data directory it stops, the standby's it promotes, the PgBouncer configuration it rewrites. None by default. */
  failoverPaths: string[];
  /** Where each setting came from, to tell a refused caller what to change: its variable, `"key" in <file>`, or "" for the default. */
  origin: Record<PolicySetting, string>;
}

/** The settings, named as in the policy file. */
export type PolicySetting =
  | "sourceRoots"
  | "restoreRoots"
  | "repositoryRoots"
  | "drillDir"
  | "protectedPaths"
  | "destinationKinds"
  | "destinationHosts"
  | "allowLoopback"
  | "allowPrivateNetworks"
  | "restoreOwners"
  | "restoreSetid"
  | "hookCommands"
  | "failoverPaths";

/** The environment variable of each setting. */
export const POLICY_VARIABLES: Record<PolicySetting, string> = {
  sourceRoots: "CAIRN_SOURCE_ROOTS",
  restoreRoots: "CAIRN_RESTORE_ROOTS",
  repositoryRoots: "CAIRN_REPOSITORY_ROOTS",
  drillDir: "CAIRN_DRILL_DIR",
  protectedPaths: "CAIRN_PROTECTED_PATHS",
  destinationKinds: "CAIRN_DESTINATION_KINDS",
  destinationHosts: "CAIRN_DESTINATION_HOSTS",
  allowLoopback: "CAIRN_ALLOW_LOOPBACK",
  allowPrivateNetworks: "CAIRN_ALLOW_PRIVATE_NETWORKS",
  restoreOwners: "CAIRN_RESTORE_OWNERS",
  restoreSetid: "CAIRN_RESTORE_SETID",
  hookCommands: "CAIRN_HOOK_COMMANDS",
  failoverPaths: "CAIRN_FAILOVER_PATHS",
};

/**
 * A request the policy refuses. The message names the rule and how to change
 * it; `rule` is the setting that decided, or "never" for what no setting allows.
 */
export class PolicyRefusal extends Error {
  constructor(
    readonly rule: PolicySetting | "never",
    message: string,
  ) {
    super(message);
    this.name = "PolicyRefusal";
  }
}

export interface PolicyContext {
  env?: Record<string, string | undefined>;
  /** The data directory (CAIRN_DATA_DIR): the catalog, Temporal's dev state and the secret key live there. */
  dataDir: string;
}

type Env = Record<string, string | undefined>;
type PolicyFile = Partial<Record<PolicySetting, unknown>>;

/**
 * Reads the policy from the environment and CAIRN_POLICY_FILE. Throws an Error
 * naming the variable or file key when a value cannot be used: a process must
 * not start on a policy it misread.
 */
export function loadPolicy({ env = process.env, dataDir }: PolicyContext): ExecutionPolicy {
  const data = path.resolve(dataDir);
  const fileName = env.CAIRN_POLICY_FILE ? path.resolve(env.CAIRN_POLICY_FILE) : undefined;
  const file = fileName ? readPolicyFile(fileName) : {};
  const origin = {} as Record<PolicySetting, string>;

  /** The raw value of a setting: the variable, else the file, else undefined (the default). */
  const pick = (setting: PolicySetting): { value: unknown; from: "env" | "file" } | undefined => {
    const variable = POLICY_VARIABLES[setting];
    if (env[variable] !== undefined) {
      origin[setting] = variable;
      return { value: env[variable], from: "env" };
    }
    if (file[setting] !== undefined) {
      origin[setting] = `"${setting}" in ${fileName}`;
      return { value: file[setting], from: "file" };
    }
    origin[setting] = "";
    return undefined;
  };
  const where = (setting: PolicySetting) => origin[setting] || POLICY_VARIABLES[setting];

  const dirs = (setting: PolicySetting, fallback: string[]): string[] => {
    const raw = pick(setting);
    if (!raw) return fallback;
    const list = raw.from === "env" ? String(raw.value).split(":") : raw.value;
    if (!Array.isArray(list) || list.some((d) => typeof d !== "string")) throw new Error(`${where(setting)} must be a list of directories`);
    const kept = (list as string[]).map((d) => d.trim()).filter((d) => d !== "");
    const relative = kept.find((d) => !path.isAbsolute(d));
    if (relative) throw new Error(`${where(setting)}: "${relative}" is not an absolute directory; give absolute paths such as /srv`);
    return [...new Set(kept.map((d) => path.resolve(d)))];
  };
  const oneDir = (setting: PolicySetting, fallback: string): string => {
    const list = dirs(setting, [fallback]);
    if (list.length !== 1) throw new Error(`${where(setting)} must name one directory`);
    return list[0];
  };
  const words = (setting: PolicySetting, fallback: string[]): string[] => {
    const raw = pick(setting);
    if (!raw) return fallback;
    const list = raw.from === "env" ? String(raw.value).split(",") : raw.value;
    if (!Array.isArray(list) || list.some((d) => typeof d !== "string")) throw new Error(`${where(setting)} must be a list of strings`);
    return (list as string[]).map((w) => w.trim().toLowerCase()).filter((w) => w !== "");
  };
  const flag = (setting: PolicySetting): boolean => {
    const raw = pick(setting);
    if (!raw) return false;
    if (typeof raw.value === "boolean") return raw.value;
    const text = String(raw.value).trim().toLowerCase();
    if (["1", "true", "yes", "on"].includes(text)) return true;
    if (["0", "false", "no", "off", ""].includes(text)) return false;
    throw new Error(`${where(setting)} must be true or false, got "${raw.value}"`);
  };

  const home = env.HOME || homedir();
  const isRoot = process.getuid?.() === 0;
  const defaultSources = ["/home", "/srv", "/var/www", "/var/lib"];
  // A user's own home is theirs to back up; root's home (/root) holds the machine's keys and is left out.
  if (!isRoot && home && path.isAbsolute(home) && !defaultSources.some((r) => within(path.resolve(home), r))) defaultSources.push(path.resolve(home));

  const destinationKinds = words("destinationKinds", [...DESTINATION_KINDS]);
  const unknownKind = destinationKinds.find((k) => !DESTINATION_KINDS.includes(k as DestinationKind));
  if (unknownKind) throw new Error(`${where("destinationKinds")}: "${unknownKind}" is not a kind of destination; use ${DESTINATION_KINDS.join(", ")}`);
  const destinationHosts = words("destinationHosts", ["*"]).map((h) => h.replace(/\.$/, ""));
  const badHost = destinationHosts.find((h) => !isHostRule(h));
  if (badHost) throw new Error(`${where("destinationHosts")}: "${badHost}" is not a host rule; use *, a host name, *.example.com, an address or a CIDR block such as 10.0.0.0/8`);

  return {
    sourceRoots: dirs("sourceRoots", defaultSources),
    restoreRoots: dirs("restoreRoots", [path.join(data, "restores")]),
    repositoryRoots: dirs("repositoryRoots", ["/srv/backups", "/var/backups", "/mnt", "/media", path.join(data, "repositories")]),
    drillDir: oneDir("drillDir", path.join(data, "drills")),
    protectedPaths: [...builtInProtected(data, fileName, env, home), ...dirs("protectedPaths", []).map((p) => ({ path: p, what: `a path protected by ${where("protectedPaths")}` }))],
    destinationKinds: destinationKinds as DestinationKind[],
    destinationHosts,
    allowLoopback: flag("allowLoopback"),
    allowPrivateNetworks: flag("allowPrivateNetworks"),
    restoreOwners: flag("restoreOwners"),
    restoreSetid: flag("restoreSetid"),
    hookCommands: dirs("hookCommands", []),
    failoverPaths: dirs("failoverPaths", []),
    origin,
  };
}

function readPolicyFile(fileName: string): PolicyFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(fileName, "utf8"));
  } catch (err) {
    throw new Error(`cannot read the policy file ${fileName} (CAIRN_POLICY_FILE): ${(err as Error).message}`);
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error(`the policy file ${fileName} must hold a JSON object`);
  const unknown = Object.keys(parsed).filter((k) => !(k in POLICY_VARIABLES));
  if (unknown.length) throw new Error(`the policy file ${fileName} has unknown keys ${unknown.join(", ")}; the keys are ${Object.keys(POLICY_VARIABLES).join(", ")}`);
  return parsed as PolicyFile;
}

/**
 * What no plan may read whatever the policy says: the data directory (catalog,
 * Temporal's dev state, secret key), the policy file, the worker's own
 * credential files, and /proc (a process's environment holds its secrets).
 */
function builtInProtected(dataDir: string, policyFile: string | undefined, env: Env, home: string): ProtectedPath[] {
  const list: ProtectedPath[] = [
    { path: dataDir, what: "the data directory (CAIRN_DATA_DIR: catalog, Temporal state, platform secret key)", writableInside: true },
    { path: path.join(dataDir, "secret.key"), what: "the platform secret key" },
    { path: path.join(dataDir, "catalog"), what: "the catalog" },
    ...["", "-wal", "-shm", "-journal"].map((suffix) => ({ path: path.join(dataDir, `temporal.db${suffix}`), what: "Temporal's state" })),
    { path: "/proc", what: "/proc (processes' memory and environment)" },
  ];
  if (policyFile) list.push({ path: policyFile, what: "the execution policy file" });
  if (env.CAIRN_AUDIT_DIR && path.isAbsolute(env.CAIRN_AUDIT_DIR)) list.push({ path: path.resolve(env.CAIRN_AUDIT_DIR), what: "the audit log's signing keys and checkpoints (CAIRN_AUDIT_DIR)" });
  for (const variable of ["CAIRN_SFTP_KEY_FILE", "CAIRN_SFTP_KNOWN_HOSTS", "GOOGLE_APPLICATION_CREDENTIALS", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"]) {
    const file = env[variable];
    if (file && path.isAbsolute(file)) list.push({ path: path.resolve(file), what: `the worker's own ${variable} file` });
  }
  if (home && path.isAbsolute(home)) {
    for (const dir of [".ssh", ".aws", ".azure", ".config/gcloud"]) list.push({ path: path.join(path.resolve(home), dir), what: `the worker's own credentials (~/${dir})` });
  }
  return list;
}

function isHostRule(rule: string): boolean {
  if (rule === "*") return true;
  if (rule.includes("/") || /^[\d.]+$/.test(rule) || rule.includes(":")) return parseCidr(rule) !== undefined;
  return /^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/.test(rule);
}

/** True when `child` is `parent` or lies inside it (both absolute and normalized). */
export function within(child: string, parent: string): boolean {
  if (child === parent) return true;
  const prefix = parent.endsWith(path.sep) ? parent : parent + path.sep;
  return child.startsWith(prefix);
}

/**
 * How a setting reads now, for a refusal: `CAIRN_SOURCE_ROOTS=/srv:/home`,
 * `"sourceRoots" in /etc/cairn/policy.json: /srv:/home`, or, for a default,
 * `CAIRN_SOURCE_ROOTS unset: /home:/srv`.
 */
export function describeSetting(policy: ExecutionPolicy, setting: PolicySetting): string {
  const value = (() => {
    switch (setting) {
      case "sourceRoots":
      case "restoreRoots":
      case "repositoryRoots":
      case "hookCommands":
      case "failoverPaths":
        return policy[setting].join(":") || "(none)";
      case "drillDir":
        return policy.drillDir;
      case "destinationKinds":
      case "destinationHosts":
        return policy[setting].join(",") || "(none)";
      case "protectedPaths":
        return policy.protectedPaths.map((p) => p.path).join(":");
      default:
        return String(policy[setting]);
    }
  })();
  const from = policy.origin[setting];
  if (from === POLICY_VARIABLES[setting]) return `${from}=${value}`;
  return from ? `${from}: ${value}` : `${POLICY_VARIABLES[setting]} unset: ${value}`;
}
