import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { promises as fs } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import * as path from "node:path";
import { CairnError } from "../../engine/errors.js";

/**
 * WAL served over a Unix socket: the hand-off between a worker that holds a
 * repository's credentials in memory and the restore_command PostgreSQL runs as its
 * own user (`cairn pg wal-fetch --via <socket>`). Nothing secret reaches the disk:
 * the socket lives in a directory only the server's user reaches (mode 0700), next to
 * a token file that changes each time a worker starts serving. The token proves the
 * caller could read that directory; the names the socket answers are WAL segments and
 * timeline histories, nothing else.
 *
 * One request per connection:
 *   client: `CAIRN-WAL 1 <token> <name>\n`
 *   server: `OK <size> <sha256>\n<bytes>` | `MISSING\n` | `DENIED\n` | `REFUSED <why>\n` | `ERROR <why>\n`
 */

export const WAL_SOCKET = "wal.sock";
export const WAL_TOKEN = "token";
const GREETING = "CAIRN-WAL 1";
/** A request is one short line; anything longer is not one. */
const MAX_REQUEST = 256;
/** The longest socket path served: Linux's limit (sun_path, 107 bytes and a zero) less the suffix of the name the socket is bound under first. */
export const MAX_SOCKET_PATH = 107 - 13;

/** The only names the socket serves: what restore_command is asked for during standby replay. */
export function servableWalName(name: string): boolean {
  return /^[0-9A-F]{24}$/.test(name) || /^[0-9A-F]{8}\.history$/.test(name);
}

/** An archived file, already verified against its recorded checksum; undefined when the archive does not have it. */
export type WalLoader = (name: string) => Promise<Buffer | undefined>;

export interface WalSocketServer {
  socketPath: string;
  /** Files served and requests refused, since start; the last failure to load a file (for the standby's warnings). */
  stats: { served: number; missing: number; denied: number; refused: number; lastError?: string };
  /** Whether the token file is still this server's: false once the directory was removed or another server took it over. */
  serving(): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * Serves `load` on `<dir>/wal.sock` with a fresh token in `<dir>/token`. `dir` must
 * already exist with its final owner and mode (0700); `owner` gets the socket and
 * token file when the worker runs as root. A stale socket left by a worker that died
 * is replaced.
 */
export async function serveWal(dir: string, load: WalLoader, owner?: { uid: number; gid: number }): Promise<WalSocketServer> {
  const socketPath = path.join(dir, WAL_SOCKET);
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) throw new CairnError(`${socketPath} is longer than a Unix socket path may be (${MAX_SOCKET_PATH} bytes); choose a shorter data directory`);
  const token = randomBytes(32).toString("hex");
  const tokenFile = path.join(dir, WAL_TOKEN);
  const tmp = `${tokenFile}.${process.pid}`;
  await fs.rm(tmp, { force: true });
  await fs.writeFile(tmp, token + "\n", { mode: 0o600, flag: "wx" });
  if (owner) await fs.chown(tmp, owner.uid, owner.gid);
  await fs.rename(tmp, tokenFile);
  const expected = Buffer.from(token);
  const stats: WalSocketServer["stats"] = { served: 0, missing: 0, denied: 0, refused: 0 };
  const sockets = new Set<Socket>();

  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    socket.setTimeout(30_000, () => socket.destroy());
    let line = "";
    const onData = (chunk: Buffer) => {
      line += chunk.toString("latin1");
      const end = line.indexOf("\n");
      if (end < 0) {
        if (line.length > MAX_REQUEST) socket.destroy();
        return;
      }
      socket.off("data", onData);
      socket.setTimeout(0);
      void answer(socket, line.slice(0, end));
    };
    socket.on("data", onData);
  });

  const answer = async (socket: Socket, request: string) => {
    const parts = request.split(" ");
    const given = Buffer.from(parts[2] ?? "");
    if (`${parts[0]} ${parts[1]}` !== GREETING || parts.length !== 4 || given.length !== expected.length || !timingSafeEqual(given, expected)) {
      stats.denied++;
      socket.end("DENIED\n");
      return;
    }
    const name = parts[3];
    if (!servableWalName(name)) {
      stats.refused++;
      socket.end("REFUSED only WAL segment and timeline history names are served\n");
      return;
    }
    let data: Buffer | undefined;
    try {
      data = await load(name);
    } catch (err) {
      stats.lastError = `${name}: ${oneLine(err)}`;
      socket.end(`ERROR ${oneLine(err)}\n`);
      return;
    }
    if (!data) {
      stats.missing++;
      socket.end("MISSING\n");
      return;
    }
    stats.served++;
    socket.write(`OK ${data.length} ${createHash("sha256").update(data).digest("hex")}\n`);
    socket.end(data);
  };

  // Bound under a name of its own, then renamed over wal.sock: a server that closes later (a watch told late that it
  // was cancelled) unlinks the name it bound, not the socket of the server that replaced it.
  const bound = `${socketPath}.${token.slice(0, 12)}`;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(bound, () => {
      server.off("error", reject);
      resolve();
    });
  });
  await fs.chmod(bound, 0o600);
  if (owner) await fs.chown(bound, owner.uid, owner.gid);
  await fs.rename(bound, socketPath);

  const ours = async () => (await fs.readFile(tokenFile, "utf8").catch(() => "")).trim() === token;
  return {
    socketPath,
    stats,
    serving: ours,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      // A later server may have taken the directory over: remove only what is still ours.
      if (await ours()) await fs.rm(tokenFile, { force: true });
    },
  };
}

/** Why a fetch over the socket got no file: "missing" (the archive does not have it) or a reason to try again later. */
export type ViaOutcome = { ok: true } | { ok: false; missing: boolean; reason: string; fatal?: boolean };

/**
 * Asks the worker serving `socketPath` for `name` and writes it to `dest`
 * (atomically, after checking its size and checksum). The token is read from the
 * socket's directory each time, so a worker that started serving since is reached.
 */
export async function fetchVia(socketPath: string, name: string, dest: string, timeoutMs = 120_000): Promise<ViaOutcome> {
  if (!servableWalName(name)) return { ok: false, missing: true, reason: `${name} is not a WAL segment or timeline history name` };
  let token: string;
  try {
    token = (await fs.readFile(path.join(path.dirname(socketPath), WAL_TOKEN), "utf8")).trim();
  } catch (err) {
    return { ok: false, missing: false, reason: `no worker serves WAL on ${socketPath} (its token: ${(err as NodeJS.ErrnoException).code ?? oneLine(err)})` };
  }
  const reply = await new Promise<{ head: string; body: Buffer } | { error: string }>((resolve) => {
    const socket = createConnection(socketPath);
    const chunks: Buffer[] = [];
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    socket.on("connect", () => socket.write(`${GREETING} ${token} ${name}\n`));
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    socket.on("end", () => {
      const all = Buffer.concat(chunks);
      const nl = all.indexOf(0x0a);
      if (nl < 0) resolve({ error: "the connection closed before an answer" });
      else resolve({ head: all.subarray(0, nl).toString("utf8"), body: all.subarray(nl + 1) });
    });
  });
  if ("error" in reply) return { ok: false, missing: false, reason: `no worker serves WAL on ${socketPath} (${reply.error})` };
  const [word, ...rest] = reply.head.split(" ");
  if (word === "MISSING") return { ok: false, missing: true, reason: `the archive has no ${name}` };
  if (word === "DENIED") return { ok: false, missing: false, reason: `the worker on ${socketPath} refused the token (it started serving again since the token was read)` };
  if (word === "ERROR") return { ok: false, missing: false, fatal: true, reason: `the worker could not load ${name} from the repository: ${rest.join(" ")}` };
  if (word !== "OK" || rest.length !== 2) return { ok: false, missing: false, reason: `unexpected answer from ${socketPath}: ${reply.head.slice(0, 100)}` };
  const [size, sha256] = rest;
  if (reply.body.length !== Number(size) || createHash("sha256").update(reply.body).digest("hex") !== sha256) {
    return { ok: false, missing: false, reason: `${name} arrived incomplete or damaged over ${socketPath} (${reply.body.length} of ${size} bytes)` };
  }
  const tmp = `${dest}.cairn-${process.pid}`;
  await fs.writeFile(tmp, reply.body);
  await fs.rename(tmp, dest);
  return { ok: true };
}

function oneLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split("\n")[0].slice(0, 500);
}
