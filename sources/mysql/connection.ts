import { promises as fs } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { CairnError } from "../../engine/errors.js";

/** A MySQL / MariaDB connection URL taken apart: the password is kept apart so it can be sealed. */
export interface MysqlConnection {
  host: string;
  port: number;
  user: string;
  /** The database the URL names, if any (a default for restores). */
  database?: string;
  /** The URL without its password. */
  url: string;
  password?: string;
}

/**
 * Reads a `mysql://user[:password]@host[:port][/database]` (or `mariadb://`) URL.
 * Throws a CairnError saying what to write instead: a URL without a host (a Unix
 * socket) or with parameters cannot be held to the execution policy.
 */
export function parseMysqlUrl(text: string): MysqlConnection {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new CairnError("write the connection as a URL: mysql://user@host:3306");
  }
  if (u.protocol !== "mysql:" && u.protocol !== "mariadb:") throw new CairnError(`the connection URL must start with mysql:// or mariadb://, not ${u.protocol}//`);
  const host = u.hostname.replace(/^\[|\]$/g, "");
  if (!host) throw new CairnError("the connection URL names no host; give the server's host name or address (Unix sockets cannot be checked by the execution policy)");
  if ([...u.searchParams.keys()].length) throw new CairnError("the connection URL takes no parameters; write mysql://user@host:3306[/database]");
  const user = decodeURIComponent(u.username);
  if (!user) throw new CairnError("the connection URL names no user; write mysql://user@host:3306");
  const password = u.password ? decodeURIComponent(u.password) : undefined;
  u.password = "";
  const database = decodeURIComponent(u.pathname.replace(/^\//, "")) || undefined;
  return { host, port: u.port ? Number(u.port) : 3306, user, database, url: u.toString(), password };
}

/** The parts of a connection the MariaDB programs need; `host` may be the address the policy allowed. */
export interface MysqlLogin {
  host: string;
  port: number;
  user: string;
  password?: string;
}

/**
 * An option file holding the login (mode 0600, in a private temporary directory):
 * the programs get `--defaults-file=<it>`, so the password is never on a command
 * line or in the environment, and no other option file (the worker's ~/.my.cnf,
 * /etc/mysql) is read. `remove()` deletes it; call it in a finally.
 */
export interface OptionFile {
  path: string;
  remove(): Promise<void>;
}

export async function writeOptionFile(login: MysqlLogin): Promise<OptionFile> {
  const dir = await fs.mkdtemp(path.join(process.env.CAIRN_TMPDIR ?? tmpdir(), "cairn-mysql-"));
  const file = path.join(dir, "client.cnf");
  // Option file values: backslash escapes are read in double-quoted values.
  const q = (v: string) => `"${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
  const lines = ["[client]", `host=${q(login.host)}`, `port=${login.port}`, "protocol=tcp", `user=${q(login.user)}`];
  if (login.password !== undefined) lines.push(`password=${q(login.password)}`);
  await fs.writeFile(file, lines.join("\n") + "\n", { mode: 0o600 });
  return { path: file, remove: () => fs.rm(dir, { recursive: true, force: true }) };
}

/** Runs `fn` with an option file for the login, removed afterwards whatever happens. */
export async function withOptionFile<T>(login: MysqlLogin, fn: (file: string) => Promise<T>): Promise<T> {
  const f = await writeOptionFile(login);
  try {
    return await fn(f.path);
  } finally {
    await f.remove();
  }
}

/** The login of a URL, with a password from elsewhere (the CLI's MYSQL_PWD or a password file; a plan's sealed one). */
export function loginOf(c: MysqlConnection, password?: string, address?: string): MysqlLogin {
  return { host: address ?? c.host, port: c.port, user: c.user, password: password ?? c.password };
}
