import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { fetchVia, serveWal, servableWalName, WAL_SOCKET, WAL_TOKEN, type WalSocketServer } from "./wal-socket.js";

const SEGMENT = "00000001000000000000000A";

/** Sends one raw request line and returns the whole answer. */
function ask(socketPath: string, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createConnection(socketPath, () => s.write(line));
    const chunks: Buffer[] = [];
    s.on("data", (c: Buffer) => chunks.push(c));
    s.on("error", reject);
    s.on("close", () => resolve(Buffer.concat(chunks).toString("latin1")));
  });
}

describe("WAL over a Unix socket", () => {
  let dir: string;
  let server: WalSocketServer | undefined;
  const archive = new Map<string, Buffer>([[SEGMENT, Buffer.alloc(64 * 1024, 7)], ["00000002.history", Buffer.from("1\t0/3000000\tno recovery target specified\n")]]);
  const load = async (name: string) => archive.get(name);

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), "cairn-wal-socket-"));
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves archived segments and timeline histories, byte for byte, and says when the archive lacks one", async () => {
    server = await serveWal(dir, load);
    const dest = path.join(dir, "RECOVERYXLOG");
    expect(await fetchVia(server.socketPath, SEGMENT, dest)).toEqual({ ok: true });
    expect(readFileSync(dest).equals(archive.get(SEGMENT)!)).toBe(true);
    expect(await fetchVia(server.socketPath, "00000002.history", dest)).toEqual({ ok: true });
    expect(readFileSync(dest, "utf8")).toContain("0/3000000");
    expect(await fetchVia(server.socketPath, "00000003.history", dest)).toMatchObject({ ok: false, missing: true });
    expect(server.stats).toMatchObject({ served: 2, missing: 1, denied: 0 });
  });

  it("keeps its token in a file only the owner reads, and the socket likewise", async () => {
    server = await serveWal(dir, load);
    expect(statSync(path.join(dir, WAL_TOKEN)).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(dir, WAL_SOCKET)).mode & 0o777).toBe(0o600);
    expect(readFileSync(path.join(dir, WAL_TOKEN), "utf8").trim()).toMatch(/^[0-9a-f]{64}$/);
  });

  it("refuses a wrong or missing token, and serves nothing to it", async () => {
    let loads = 0;
    server = await serveWal(dir, async (name) => (loads++, archive.get(name)));
    const token = readFileSync(path.join(dir, WAL_TOKEN), "utf8").trim();
    const wrong = token.slice(0, -1) + (token.endsWith("0") ? "1" : "0");
    expect(await ask(server.socketPath, `CAIRN-WAL 1 ${wrong} ${SEGMENT}\n`)).toBe("DENIED\n");
    expect(await ask(server.socketPath, `CAIRN-WAL 1 ${SEGMENT}\n`)).toBe("DENIED\n");
    expect(await ask(server.socketPath, `CAIRN-WAL 1 ${token.slice(0, 10)} ${SEGMENT}\n`)).toBe("DENIED\n");
    expect(loads).toBe(0);
    expect(server.stats.denied).toBe(3);
    expect((await ask(server.socketPath, `CAIRN-WAL 1 ${token} ${SEGMENT}\n`)).startsWith("OK 65536 ")).toBe(true);
    expect(loads).toBe(1);
  });

  it("answers only segment and history names, whatever else is asked with the right token", async () => {
    let loads = 0;
    server = await serveWal(dir, async (name) => (loads++, archive.get(name)));
    const token = readFileSync(path.join(dir, WAL_TOKEN), "utf8").trim();
    for (const name of ["../token", "/etc/passwd", `${SEGMENT}.partial`, `${SEGMENT}.00000028.backup`, SEGMENT.toLowerCase(), "keys/abc", `${SEGMENT}x`]) {
      expect(await ask(server.socketPath, `CAIRN-WAL 1 ${token} ${name}\n`), name).toMatch(/^REFUSED /);
    }
    expect(loads).toBe(0);
    expect(servableWalName(SEGMENT)).toBe(true);
    expect(servableWalName("0000000A.history")).toBe(true);
  });

  it("hangs up on a request line that never ends", async () => {
    server = await serveWal(dir, load);
    expect(await ask(server.socketPath, "x".repeat(10_000))).toBe("");
  });

  it("tells a caller to try again when no worker serves, and takes the next worker's new token", async () => {
    const dest = path.join(dir, "RECOVERYXLOG");
    const socketPath = path.join(dir, WAL_SOCKET);
    expect(await fetchVia(socketPath, SEGMENT, dest)).toMatchObject({ ok: false, missing: false });
    server = await serveWal(dir, load);
    const first = readFileSync(path.join(dir, WAL_TOKEN), "utf8");
    await server.close();
    expect(await fetchVia(socketPath, SEGMENT, dest)).toMatchObject({ ok: false, missing: false });
    server = await serveWal(dir, load);
    expect(await server.serving()).toBe(true);
    expect(readFileSync(path.join(dir, WAL_TOKEN), "utf8")).not.toBe(first);
    expect(await fetchVia(socketPath, SEGMENT, dest)).toEqual({ ok: true });
  });

  it("knows when its directory was removed or another server took it over", async () => {
    server = await serveWal(dir, load);
    const other = await serveWal(dir, load);
    expect(await server.serving()).toBe(false);
    expect(await other.serving()).toBe(true);
    // Closing the superseded server leaves the newer one's token in place.
    await server.close();
    expect(await fetchVia(other.socketPath, SEGMENT, path.join(dir, "RECOVERYXLOG"))).toEqual({ ok: true });
    rmSync(path.join(dir, WAL_TOKEN));
    expect(await other.serving()).toBe(false);
    server = other;
  });

  it("reports a repository failure as fatal (recovery stops rather than end early) and remembers it", async () => {
    server = await serveWal(dir, async () => {
      throw new Error("the archived 00000001000000000000000A is damaged");
    });
    const outcome = await fetchVia(server.socketPath, SEGMENT, path.join(dir, "RECOVERYXLOG"));
    expect(outcome).toMatchObject({ ok: false, missing: false, fatal: true });
    expect(server.stats.lastError).toContain("damaged");
  });
});
