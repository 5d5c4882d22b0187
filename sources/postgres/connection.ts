import { CairnError } from "../../engine/errors.js";

/** Connection parameters a plan's URL may carry; anything else (host=, passfile=, service=...) could point elsewhere than the host that was checked. */
const ALLOWED_PARAMS = new Set(["sslmode", "connect_timeout", "application_name"]);

/** A PostgreSQL connection URL taken apart: the password is kept apart so it can be sealed. */
export interface PgConnection {
  host: string;
  port: number;
  user: string;
  database: string;
  /** The URL without its password. */
  url: string;
  password?: string;
}

/**
 * Reads a `postgresql://user[:password]@host[:port]/database[?sslmode=...]` URL.
 * Throws a CairnError saying what to write instead: a URL without a host (a Unix
 * socket) or with parameters that choose another host cannot be held to the
 * execution policy.
 */
export function parseConnectionUrl(text: string): PgConnection {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new CairnError("write the connection as a URL: postgresql://user@host:5432/database");
  }
  if (u.protocol !== "postgresql:" && u.protocol !== "postgres:") throw new CairnError(`the connection URL must start with postgresql://, not ${u.protocol}//`);
  const host = u.hostname.replace(/^\[|\]$/g, "");
  if (!host) throw new CairnError("the connection URL names no host; give the server's host name or address (Unix sockets cannot be checked by the execution policy)");
  for (const key of u.searchParams.keys()) {
    if (!ALLOWED_PARAMS.has(key)) throw new CairnError(`the connection URL parameter "${key}" is not accepted; only ${[...ALLOWED_PARAMS].join(", ")} are (host and port go in the URL itself, the password in the password field)`);
  }
  const user = decodeURIComponent(u.username);
  if (!user) throw new CairnError("the connection URL names no user; write postgresql://user@host:5432/database");
  const password = u.password ? decodeURIComponent(u.password) : undefined;
  u.password = "";
  const database = decodeURIComponent(u.pathname.replace(/^\//, "")) || user;
  return { host, port: u.port ? Number(u.port) : 5432, user, database, url: u.toString(), password };
}

/**
 * The URL with libpq told to connect to `address` (hostaddr) while still naming
 * the host (for TLS verification): the connection goes to the address that was
 * checked, not to whatever the name resolves to a moment later.
 */
export function pinnedUrl(url: string, address: string): string {
  const u = new URL(url);
  u.searchParams.set("hostaddr", address);
  return u.toString();
}

/** The PostgreSQL programs' environment with the password, so it is never on a command line. */
export function connectionEnv(password: string | undefined): NodeJS.ProcessEnv {
  const env = { ...process.env };
  // Only the plan's own credentials: not a PGPASSWORD, PGPASSFILE or PGSERVICE the worker happens to have.
  for (const name of ["PGPASSWORD", "PGPASSFILE", "PGSERVICE", "PGSERVICEFILE", "PGHOST", "PGHOSTADDR", "PGPORT"]) delete env[name];
  if (password !== undefined) env.PGPASSWORD = password;
  // A path that cannot exist: libpq then reads no password file at all (not the worker's ~/.pgpass).
  else env.PGPASSFILE = "/dev/null/none";
  return env;
}
