import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import * as path from "node:path";
import { CairnError } from "../../engine/errors.js";

/**
 * Finds a PostgreSQL client program: in CAIRN_PG_BIN, else the newest
 * /usr/lib/postgresql/<version>/bin (Debian's layout), else on PATH.
 */
export function pgTool(name: string): string {
  const dirs: string[] = [];
  if (process.env.CAIRN_PG_BIN) dirs.push(process.env.CAIRN_PG_BIN);
  const debian = "/usr/lib/postgresql";
  if (existsSync(debian)) {
    const versions = readdirSync(debian).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    dirs.push(...versions.map((v) => path.join(debian, v, "bin")));
  }
  dirs.push(...(process.env.PATH ?? "").split(":").filter(Boolean));
  for (const d of dirs) {
    const p = path.join(d, name);
    if (existsSync(p)) return p;
  }
  throw new CairnError(`${name} was not found: install the PostgreSQL client programs (Debian: apt-get install postgresql-client-15) or point CAIRN_PG_BIN at their directory`);
}

/** Starts a PostgreSQL program; its stderr is kept for the error message. */
export function startTool(name: string, args: string[], env: NodeJS.ProcessEnv = process.env): { child: ChildProcessWithoutNullStreams; done: Promise<string> } {
  const child = spawn(pgTool(name), args, { env: { ...env, PGAPPNAME: "cairn" }, stdio: ["pipe", "pipe", "pipe"] });
  child.stdin.end();
  const err: Buffer[] = [];
  child.stderr.on("data", (d: Buffer) => err.push(d));
  const done = new Promise<string>((resolve, reject) => {
    child.once("error", (e) => reject(new CairnError(`cannot run ${name}: ${e.message}`)));
    child.once("close", (code, signal) => {
      const stderr = Buffer.concat(err).toString("utf8");
      if (code === 0) resolve(stderr);
      else reject(new CairnError(`${name} failed (${signal ?? `exit ${code}`}): ${explain(stderr.trim())}`));
    });
  });
  return { child, done };
}

/** Runs a program to the end; returns its stdout. */
export async function runTool(name: string, args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  const { child, done } = startTool(name, args, env);
  const out: Buffer[] = [];
  child.stdout.on("data", (d: Buffer) => out.push(d));
  await done;
  return Buffer.concat(out).toString("utf8");
}

/** Runs one SQL query with psql; returns the rows, columns separated by `|`. */
export async function query(url: string, sql: string, env?: NodeJS.ProcessEnv): Promise<string[][]> {
  const out = await runTool("psql", ["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql], env);
  return out.split("\n").filter((l) => l !== "").map((l) => l.split("|"));
}

/** Adds what to do to the messages PostgreSQL's programs print for the usual mistakes. */
function explain(stderr: string): string {
  if (/password authentication failed|no password supplied/.test(stderr)) return `${stderr}\ncheck the user and password in --url (or PGPASSWORD / ~/.pgpass)`;
  if (/could not connect|Connection refused|No such file or directory.*socket/.test(stderr)) return `${stderr}\ncheck the host and port in --url and that the server is running`;
  if (/no pg_hba.conf entry.*replication/.test(stderr)) return `${stderr}\nallow replication connections for this user in pg_hba.conf`;
  if (/server version|incompatible server version|aborting because of server version mismatch/.test(stderr)) return `${stderr}\nuse client programs of the server's major version or newer (set CAIRN_PG_BIN)`;
  return stderr;
}
