import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect as tcpConnect, type Socket } from "node:net";
import * as posix from "node:path/posix";
import { Client, type SFTPWrapper } from "ssh2";
import { mapLimit } from "../engine/concurrency.js";
import { BackendError, bodyParts, existsByStat, type Backend, type Body, type ByteRange, type ObjectInfo } from "./backend.js";
import { fingerprint, keyType, knownHostName, verifyHostKey } from "./known-hosts.js";
import type { LookupFunction } from "./url.js";

export interface SftpOptions {
  host: string;
  port?: number;
  username: string;
  /** The repository's directory on the server; a relative path starts at the login directory. */
  path: string;
  privateKey?: Buffer | string;
  passphrase?: string;
  password?: string;
  /** A known_hosts file; the server's key must be listed in it for this host and port. */
  knownHostsFile: string;
  /** Resolves the server's host name (the execution policy's check); dns.lookup when absent. */
  lookup?: LookupFunction;
}

/** SFTP status codes (draft-ietf-secsh-filexfer-02) the backend tells apart. */
const NO_SUCH_FILE = 2;
const PERMISSION_DENIED = 3;
const FAILURE = 4;
const NO_CONNECTION = 6;
const CONNECTION_LOST = 7;

/** Bytes per SFTP read or write request, and how many are in flight at once (a 4 MiB window). */
const PIECE = 128 * 1024;
const IN_FLIGHT = 32;
/** Directories listed at once while walking a prefix (data/ has 256). */
const DIRS_AT_ONCE = 16;

const TRANSIENT_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "ECONNABORTED"]);

interface Session {
  client: Client;
  sftp: SFTPWrapper;
  sock: Socket;
}

type Callback<T> = (err: Error | null | undefined, value: T) => void;

function call<T = void>(fn: (cb: Callback<T>) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));
}

/**
 * A repository in a directory on an SSH server, over SFTP. Objects are uploaded to
 * a temporary name and renamed into place with OpenSSH's posix-rename extension, so
 * readers never see a partial object. The server's host key must be in the
 * configured known_hosts file: an unknown or changed key is refused.
 */
export class SftpBackend implements Backend {
  readonly location: string;
  private readonly root: string;
  private readonly port: number;
  private session?: Promise<Session>;
  private active = 0;
  private hostKeyProblem?: string;
  private readonly madeDirs = new Set<string>();

  constructor(private readonly options: SftpOptions) {
    this.port = options.port ?? 22;
    this.root = options.path.replace(/\/+$/, "") || "/";
    this.location = `sftp:${options.username}@${options.host}:${this.port}${this.root.startsWith("/") ? "" : "/~/"}${this.root}`;
  }

  private file(key: string): string {
    if (key.split("/").some((part) => part === ".." || part === "" || part === ".")) {
      throw new BackendError("permanent", `invalid object key ${JSON.stringify(key)}`);
    }
    return posix.join(this.root, key);
  }

  private connect(): Promise<Session> {
    const { host, username } = this.options;
    const sock = tcpConnect({ host, port: this.port, ...(this.options.lookup ? { lookup: this.options.lookup } : {}) });
    const client = new Client();
    const session = new Promise<Session>((resolve, reject) => {
      client.once("ready", () => {
        client.sftp((err, sftp) => (err ? reject(err) : resolve({ client, sftp, sock })));
      });
      client.once("error", reject);
    });
    // A dropped connection is noticed by the next operation, which connects again.
    const forget = () => {
      if (this.session === session) this.session = undefined;
    };
    client.on("error", forget);
    client.on("close", forget);
    session.catch(() => {
      forget();
      client.end();
    });
    client.connect({
      sock,
      username,
      privateKey: this.options.privateKey,
      passphrase: this.options.passphrase,
      password: this.options.password,
      readyTimeout: 20_000,
      hostVerifier: (key: Buffer) => this.checkHostKey(key),
    });
    return session;
  }

  private checkHostKey(key: Buffer): boolean {
    const { host } = this.options;
    const file = this.options.knownHostsFile;
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
        this.hostKeyProblem = `cannot read the known_hosts file ${file} (${(err as Error).message}); fix its permissions or set CAIRN_SFTP_KNOWN_HOSTS`;
        return false;
      }
    }
    const name = knownHostName(host, this.port);
    const offered = `${keyType(key)} ${fingerprint(key)}`;
    const verdict = verifyHostKey(text, host, this.port, key);
    if (verdict === "known") return true;
    this.hostKeyProblem =
      verdict === "unknown"
        ? `the SSH host key of ${name} (${offered}) is not in ${file}. Check the fingerprint with the server's administrator, ` +
          `then add the key (for example: ssh-keyscan -p ${this.port} ${host} >> ${file}) or set CAIRN_SFTP_KNOWN_HOSTS to a file that lists it`
        : verdict === "changed"
          ? `the SSH host key of ${name} has changed: the server offers ${offered}, which ${file} does not list for it. ` +
            `Someone may be intercepting the connection, or the server was reinstalled; if the change is expected, ` +
            `remove the old key (ssh-keygen -R "${name}" -f ${file}) and add the new one`
          : `the SSH host key of ${name} (${offered}) is marked @revoked in ${file}; do not connect until the server has a new key`;
    return false;
  }

  private classify(err: unknown, what: string): BackendError {
    if (err instanceof BackendError) return err;
    const e = err as Error & { code?: number | string; level?: string };
    const where = `${what} at ${this.location}`;
    if (e.level === "client-authentication") {
      return new BackendError(
        "permanent",
        `${where}: the server refused ${this.options.username}'s credentials; check CAIRN_SFTP_KEY_FILE or CAIRN_SFTP_PASSWORD and the account's authorized_keys`,
        { cause: err, reason: "access-denied" },
      );
    }
    if (e.message?.startsWith("Cannot parse privateKey")) {
      return new BackendError("permanent", `${where}: cannot read the private key (${e.message}); check CAIRN_SFTP_KEY_FILE and its passphrase`, { cause: err, reason: "no-credentials" });
    }
    if (e.message?.includes("verification failed") && this.hostKeyProblem) return new BackendError("permanent", `${where}: ${this.hostKeyProblem}`, { cause: err, reason: "host-key" });
    if (e.code === NO_SUCH_FILE) return new BackendError("not-found", `${where}: not found`, { cause: err });
    if (e.code === PERMISSION_DENIED) {
      return new BackendError("permanent", `${where}: permission denied; check that ${this.options.username} may read and write ${this.root} on the server`, { cause: err, reason: "access-denied" });
    }
    const transient =
      e.code === NO_CONNECTION ||
      e.code === CONNECTION_LOST ||
      (typeof e.code === "string" && TRANSIENT_CODES.has(e.code)) ||
      e.level === "client-timeout" ||
      e.level === "client-socket" ||
      /No response from server|Not connected|Connection lost|Channel open failure|Unable to start subsystem/i.test(e.message ?? "");
    return new BackendError(transient ? "transient" : "permanent", `${where}: ${e.message ?? String(err)}`, { cause: err });
  }

  /**
   * Runs one operation on the shared connection. The socket keeps the process
   * alive only while operations run, so a CLI command exits when it is done.
   */
  private async run<T>(what: string, op: (sftp: SFTPWrapper) => Promise<T>): Promise<T> {
    this.active++;
    let session: Session | undefined;
    try {
      session = await (this.session ??= this.connect());
      session.sock.ref();
      return await op(session.sftp);
    } catch (err) {
      throw this.classify(err, what);
    } finally {
      if (--this.active === 0) session?.sock.unref();
    }
  }

  /** mkdir -p, remembering what exists. */
  private async makeDirs(sftp: SFTPWrapper, dir: string): Promise<void> {
    if (this.madeDirs.has(dir) || dir === "/" || dir === ".") return;
    try {
      await call((cb) => sftp.mkdir(dir, cb));
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (code === NO_SUCH_FILE) {
        await this.makeDirs(sftp, posix.dirname(dir));
        await this.makeDirs(sftp, dir);
        return;
      }
      // OpenSSH answers FAILURE when the directory is already there (perhaps made by a parallel put).
      if (code !== FAILURE || !(await call<{ isDirectory(): boolean }>((cb) => sftp.stat(dir, cb))).isDirectory()) throw err;
    }
    this.madeDirs.add(dir);
  }

  async put(key: string, body: Body): Promise<void> {
    const target = this.file(key);
    const dir = posix.dirname(target);
    const tmp = posix.join(dir, `.tmp-${posix.basename(target)}-${randomBytes(6).toString("hex")}`);
    await this.run(`writing ${key}`, async (sftp) => {
      await this.makeDirs(sftp, dir);
      const handle = await call<Buffer>((cb) => sftp.open(tmp, "w", 0o600, cb));
      try {
        try {
          await writeParts(sftp, handle, bodyParts(body));
          // Durable before it becomes visible, where the server can (OpenSSH's fsync extension).
          await call((cb) => sftp.ext_openssh_fsync(handle, cb)).catch((err: Error) => {
            if (!/not support/i.test(err.message)) throw err;
          });
        } finally {
          await call((cb) => sftp.close(handle, cb));
        }
        await rename(sftp, tmp, target);
      } catch (err) {
        await call((cb) => sftp.unlink(tmp, cb)).catch(() => undefined);
        throw err;
      }
    });
  }

  async get(key: string, range?: ByteRange): Promise<Buffer> {
    const file = this.file(key);
    return this.run(`reading ${key}`, async (sftp) => {
      const handle = await call<Buffer>((cb) => sftp.open(file, "r", cb));
      try {
        const size = (await call<{ size: number }>((cb) => sftp.fstat(handle, cb))).size;
        const offset = range?.offset ?? 0;
        const length = range ? range.length : size;
        if (offset + length > size) {
          throw new BackendError("permanent", `reading ${key} at ${this.location}: the object is ${size} bytes, shorter than the requested range (${offset}+${length})`);
        }
        const buf = Buffer.allocUnsafe(length);
        await inPieces(length, async (at, n) => {
          for (let got = 0; got < n; ) {
            const read = await call<number>((cb) => sftp.read(handle, buf, at + got, n - got, offset + at + got, cb));
            if (read === 0) throw new BackendError("transient", `reading ${key} at ${this.location}: the object ended early (was it replaced while being read?)`);
            got += read;
          }
        });
        return buf;
      } finally {
        await call((cb) => sftp.close(handle, cb)).catch(() => undefined);
      }
    });
  }

  async stat(key: string): Promise<ObjectInfo> {
    const file = this.file(key);
    const attrs = await this.run(`stat ${key}`, (sftp) => call<{ size: number }>((cb) => sftp.stat(file, cb)));
    return { key, size: attrs.size };
  }

  exists(key: string): Promise<boolean> {
    return existsByStat(this, key);
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    let dirs = [this.file(prefix.replace(/\/+$/, ""))];
    while (dirs.length) {
      const found: ObjectInfo[] = [];
      const next: string[] = [];
      await this.run(`listing ${prefix}`, (sftp) =>
        mapLimit(dirs, DIRS_AT_ONCE, async (dir) => {
          let entries;
          try {
            entries = await call<{ filename: string; attrs: { size: number; isDirectory(): boolean; isFile(): boolean } }[]>((cb) => sftp.readdir(dir, cb));
          } catch (err) {
            if ((err as { code?: number }).code === NO_SUCH_FILE) return;
            throw err;
          }
          for (const e of entries) {
            const full = posix.join(dir, e.filename);
            if (e.attrs.isDirectory()) next.push(full);
            else if (e.attrs.isFile() && !e.filename.startsWith(".tmp-")) found.push({ key: posix.relative(this.root, full), size: e.attrs.size });
          }
        }),
      );
      yield* found;
      dirs = next;
    }
  }

  async delete(key: string): Promise<void> {
    const file = this.file(key);
    await this.run(`deleting ${key}`, async (sftp) => {
      try {
        await call((cb) => sftp.unlink(file, cb));
      } catch (err) {
        if ((err as { code?: number }).code !== NO_SUCH_FILE) throw err;
      }
    });
  }

  async close(): Promise<void> {
    const session = this.session;
    this.session = undefined;
    if (session) (await session.catch(() => undefined))?.client.end();
  }
}

/** Replaces `target` atomically (posix-rename@openssh.com); plain SFTP rename refuses an existing target. */
async function rename(sftp: SFTPWrapper, from: string, to: string): Promise<void> {
  try {
    await call((cb) => sftp.ext_openssh_rename(from, to, cb));
  } catch (err) {
    if (!/not support/i.test((err as Error).message)) throw err;
    // Without the extension: the engine's files are write-once, so the target rarely exists.
    await call((cb) => sftp.rename(from, to, cb)).catch(async () => {
      await call((cb) => sftp.unlink(to, cb));
      await call((cb) => sftp.rename(from, to, cb));
    });
  }
}

/** Writes the parts in order, IN_FLIGHT requests at a time, without joining them into one buffer. */
async function writeParts(sftp: SFTPWrapper, handle: Buffer, parts: readonly Uint8Array[]): Promise<void> {
  const pieces: { buf: Buffer; position: number }[] = [];
  let position = 0;
  for (const part of parts) {
    const buf = Buffer.from(part.buffer, part.byteOffset, part.byteLength);
    for (let at = 0; at < buf.length; at += PIECE) pieces.push({ buf: buf.subarray(at, at + PIECE), position: position + at });
    position += buf.length;
  }
  await mapLimit(pieces, IN_FLIGHT, (p) => call<void>((cb) => sftp.write(handle, p.buf, 0, p.buf.length, p.position, cb)));
}

/** Runs `fn(offset, length)` over [0, total) in PIECE-sized pieces, IN_FLIGHT at a time. */
async function inPieces(total: number, fn: (offset: number, length: number) => Promise<void>): Promise<void> {
  const offsets: number[] = [];
  for (let at = 0; at < total; at += PIECE) offsets.push(at);
  await mapLimit(offsets, IN_FLIGHT, (at) => fn(at, Math.min(PIECE, total - at)));
}
