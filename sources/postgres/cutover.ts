import { promises as fs } from "node:fs";
import { CairnError } from "../../engine/errors.js";
import { query } from "./tools.js";

/**
 * PgBouncer as a failover's connection switch: its [databases] entry for the
 * application's database is pointed at the new primary and PgBouncer reloads,
 * so clients that connect (or whose next transaction gets a server connection)
 * reach the new primary without changing their own settings.
 */

interface IniLine {
  section: string;
  key?: string;
  text: string;
}

function parseIni(text: string): IniLine[] {
  let section = "";
  return text.split("\n").map((line) => {
    const t = line.trim();
    const s = /^\[([^\]]+)\]$/.exec(t);
    if (s) {
      section = s[1].trim().toLowerCase();
      return { section, text: line };
    }
    if (!t || t.startsWith(";") || t.startsWith("#")) return { section, text: line };
    const eq = t.indexOf("=");
    return eq > 0 ? { section, key: t.slice(0, eq).trim().replace(/^"(.*)"$/, "$1"), text: line } : { section, text: line };
  });
}

/** A [databases] connection string's key=value pairs (values may be quoted with single quotes). */
function parseConnString(value: string): [string, string][] {
  const out: [string, string][] = [];
  const re = /\s*([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.|'')*'|\S*)/g;
  for (let m = re.exec(value); m; m = re.exec(value)) out.push([m[1], m[2]]);
  return out;
}

/**
 * The configuration with `database`'s [databases] entry pointing at host:port
 * (its other settings, such as dbname or pool_size, kept). Throws a CairnError
 * naming what to add when there is no such entry.
 */
export function pointDatabase(configText: string, database: string, host: string, port: number): { text: string; before: string } {
  const lines = parseIni(configText);
  const entry = lines.find((l) => l.section === "databases" && l.key === database);
  if (!entry) {
    const names = lines.filter((l) => l.section === "databases" && l.key).map((l) => l.key);
    throw new CairnError(`PgBouncer's configuration has no [databases] entry named "${database}"${names.length ? ` (it has ${names.join(", ")})` : ""}; add one such as ${database} = host=... port=... dbname=${database}, or name the entry clients use`);
  }
  const value = entry.text.slice(entry.text.indexOf("=") + 1);
  const pairs = parseConnString(value).filter(([k]) => k !== "host" && k !== "port");
  const rewritten = `${entry.text.slice(0, entry.text.indexOf("=")).trimEnd()} = ${[["host", host], ["port", String(port)], ...pairs].map(([k, v]) => `${k}=${v}`).join(" ")}`;
  return { text: lines.map((l) => (l === entry ? rewritten : l.text)).join("\n"), before: value.trim() };
}

/** Where PgBouncer takes clients and its pidfile, as its configuration says. */
export interface PgbouncerSettings {
  host: string;
  port: number;
  pidfile?: string;
}

/** Where PgBouncer takes clients (its first listen_addr, `*` read as 127.0.0.1) and its pidfile, from its configuration. */
export function pgbouncerSettings(configText: string): PgbouncerSettings {
  const lines = parseIni(configText);
  const get = (key: string) => {
    const line = lines.find((l) => l.section === "pgbouncer" && l.key === key);
    return line ? line.text.slice(line.text.indexOf("=") + 1).trim() : undefined;
  };
  const addr = (get("listen_addr") ?? "127.0.0.1").split(",")[0].trim();
  const pidfile = get("pidfile");
  return { host: addr === "*" || addr === "" ? "127.0.0.1" : addr, port: Number(get("listen_port") ?? 6432), ...(pidfile ? { pidfile } : {}) };
}

/**
 * Points the entry at host:port and makes PgBouncer read its configuration again:
 * RELOAD on the admin console when adminUrl is given, else SIGHUP to the pid in
 * its pidfile once /proc says the pid is a pgbouncer. Before anything changes,
 * `vet` (the caller's policy) sees the settings the file names: the address the
 * caller will sign in to, and the pidfile when it is to be followed (`signal`).
 * The file is rewritten in place (same owner and mode). Returns the entry as it
 * was, for the result and for undoing by hand, and PgBouncer's settings as the
 * file said them.
 */
export async function switchPgbouncer(
  spec: { configFile: string; database: string; adminUrl?: string },
  host: string,
  port: number,
  env: NodeJS.ProcessEnv | undefined,
  vet: (settings: PgbouncerSettings, signal: boolean) => Promise<void>,
): Promise<{ before: string; settings: PgbouncerSettings }> {
  const text = await fs.readFile(spec.configFile, "utf8").catch((err: NodeJS.ErrnoException) => {
    throw new CairnError(`cannot read PgBouncer's configuration ${spec.configFile}: ${err.code ?? err.message}`);
  });
  const settings = pgbouncerSettings(text);
  const next = pointDatabase(text, spec.database, host, port);
  // Refused before anything changes: an address or a pidfile the policy does not allow is neither reached nor followed.
  await vet(settings, !spec.adminUrl);
  await fs.writeFile(spec.configFile, next.text);
  if (spec.adminUrl) {
    await query(spec.adminUrl, "RELOAD", env).catch((err: Error) => {
      throw new CairnError(`PgBouncer's configuration now points ${spec.database} at ${host}:${port}, but RELOAD on its admin console failed: ${err.message}`);
    });
    return { ...next, settings };
  }
  const { pidfile } = settings;
  if (!pidfile) throw new CairnError(`PgBouncer's configuration now points ${spec.database} at ${host}:${port}, but it names no pidfile and no adminUrl was given, so it cannot be told to reload; give cutover.adminUrl`);
  const pid = Number((await fs.readFile(pidfile, "utf8").catch(() => "")).trim());
  if (!pid) throw new CairnError(`PgBouncer's pidfile ${pidfile} has no pid (is PgBouncer running?); the configuration now points ${spec.database} at ${host}:${port}`);
  // A stale pidfile whose number another process took (or a pidfile naming another program) is not a PgBouncer to signal.
  const comm = (await fs.readFile(`/proc/${pid}/comm`, "utf8").catch(() => "")).trim();
  if (comm !== "pgbouncer") throw new CairnError(`PgBouncer's pidfile ${pidfile} names pid ${pid}, which is ${comm ? `${comm}, not pgbouncer` : "not running"}; nothing was signalled. The configuration now points ${spec.database} at ${host}:${port}: reload PgBouncer by hand, or give cutover.adminUrl`);
  process.kill(pid, "SIGHUP");
  return { ...next, settings };
}
