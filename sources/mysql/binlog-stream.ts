import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { promises as fs } from "node:fs";
import * as path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { isNotFound } from "../../backends/backend.js";
import { CairnError } from "../../engine/errors.js";
import { withLock } from "../../engine/open.js";
import type { Repository } from "../../engine/repository.js";
import { loadSnapshots } from "../../engine/snapshot.js";
import { binlogArchives, binlogSequence as sequence, requireLogBin, storeBinlogs } from "./binlog-store.js";
import { mysqlTool, query } from "./tools.js";

/**
 * Continuous binary log archiving. `mariadb-binlog --read-from-remote-server --raw
 * --stop-never` streams the server's binary log into a spool directory as the server
 * writes it (raw mode writes each event as it arrives); every `intervalSeconds` the
 * streamer stores what is new:
 *
 * - each log the server has closed, once the spool holds all of it (its size is the
 *   one SHOW BINARY LOGS lists), as a binary log archive snapshot like
 *   `cairn mysql binlog-archive` writes, so recovery and retention treat it alike;
 * - the log the server writes now, up to the position SHOW MASTER STATUS gave (always
 *   the end of an event), as a *partial* (BinlogPartial: named objects, each store
 *   adding the bytes new since the last), removed once the whole log is archived. It
 *   records the time of that SHOW MASTER STATUS: every event written before it is in
 *   the partial, so point-in-time recovery reaches it.
 *
 * mariadb-binlog exits when the server goes away (a restart): it is started again,
 * from the oldest log not archived whole, until the signal aborts.
 */

const PARTIAL_DIR = "binlog";
/** Segments of one log before the next store rewrites them as one (bounds the objects a recovery reads). */
const SEGMENTS_BEFORE_COMPACTION = 64;

/**
 * The stored prefix of a binary log the server still writes. It is kept as segments,
 * one named object per store holding the bytes new since the previous one
 * (`<log>@<start>-<end>`), so a store costs what the server wrote since; every
 * SEGMENTS_BEFORE_COMPACTION stores they are rewritten as one.
 */
export interface BinlogPartial {
  server: string;
  name: string;
  /** Bytes stored: the server's position at `through`, the end of an event. */
  size: number;
  /** When the server was at that position: every event written before is in the partial. */
  through: string;
  /** The keys of the segments that make it, in order. */
  segments: string[];
}

interface Segment {
  key: string;
  name: string;
  start: number;
  end: number;
}

function partialPrefix(repo: Repository, server: string): string {
  return `${PARTIAL_DIR}/${repo.namedId(`mysql-server:${server}`)}/`;
}

/** The server's stored segments, by log, start and end. */
async function segmentsOf(repo: Repository, server: string): Promise<Segment[]> {
  const prefix = partialPrefix(repo, server);
  const out: Segment[] = [];
  for await (const o of repo.backend.list(prefix)) {
    const m = /^(.+\.\d+)@(\d+)-(\d+)$/.exec(o.key.slice(prefix.length));
    if (m) out.push({ key: o.key, name: m[1], start: Number(m[2]), end: Number(m[3]) });
  }
  return out.sort((a, b) => sequence(a.name) - sequence(b.name) || a.start - b.start || a.end - b.end);
}

/** The longest run of segments from the log's start, each beginning where the one before ended. */
function chain(segments: Segment[]): Segment[] {
  const out: Segment[] = [];
  let at = 0;
  for (;;) {
    const next = segments.filter((s) => s.start === at).sort((a, b) => b.end - a.end)[0];
    if (!next) return out;
    out.push(next);
    at = next.end;
  }
}

/** The partial of the newest log the server's segments hold, if any. */
export async function loadBinlogPartial(repo: Repository, server: string): Promise<BinlogPartial | undefined> {
  const all = await segmentsOf(repo, server);
  const name = all.at(-1)?.name;
  const parts = chain(all.filter((s) => s.name === name));
  if (!name || !parts.length) return undefined;
  const last = parts[parts.length - 1];
  let head: { through: string };
  try {
    head = JSON.parse((await repo.loadNamedHead(last.key)).toString("utf8")) as { through: string };
  } catch (err) {
    // Compacted between the listing and the read: the caller reads again.
    if (isNotFound(err)) return undefined;
    throw err;
  }
  return { server, name, size: last.end, through: head.through, segments: parts.map((s) => s.key) };
}

/** The bytes of a partial; undefined when a segment was compacted or removed since it was listed. */
export async function readBinlogPartial(repo: Repository, partial: BinlogPartial): Promise<Buffer | undefined> {
  const parts: Buffer[] = [];
  for (const key of partial.segments) {
    try {
      const { head, body } = await repo.loadNamed(key);
      const meta = JSON.parse(head.toString("utf8")) as { sha256: string };
      if (createHash("sha256").update(body).digest("hex") !== meta.sha256) throw new CairnError(`the stored segment ${key} of binary log ${partial.name} is damaged (its checksum does not match); run "cairn check"`);
      parts.push(body);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }
  return Buffer.concat(parts);
}

async function saveSegment(repo: Repository, server: string, name: string, start: number, data: Buffer, through: Date): Promise<string> {
  const key = `${partialPrefix(repo, server)}${name}@${start}-${start + data.length}`;
  const head = { server, name, start, end: start + data.length, through: through.toISOString(), sha256: createHash("sha256").update(data).digest("hex") };
  await repo.saveNamed(key, Buffer.from(JSON.stringify(head)), data);
  return key;
}

/** Removes the segments of logs up to `upTo` (archived whole), or those of `name` but `keep` (compacted into it). */
async function dropSegments(repo: Repository, server: string, which: { upTo: string } | { name: string; keep: string }): Promise<void> {
  for (const s of await segmentsOf(repo, server)) {
    const drop = "upTo" in which ? sequence(s.name) <= sequence(which.upTo) : s.name === which.name && s.key !== which.keep;
    if (drop) await repo.backend.delete(s.key);
  }
}

/** What the streamer reports after each look at the server and the spool. */
export interface BinlogStreamReport {
  server: string;
  /** mariadb-binlog runs and streams. */
  streaming: boolean;
  /** Where the server writes (SHOW MASTER STATUS), when it answered. */
  serverFile?: string;
  serverPosition?: number;
  /** The end of what the repository holds: the last log archived whole, or the partial's log and size. */
  archivedFile?: string;
  archivedPosition?: number;
  /** Every event the server wrote before this time is in the repository. */
  archivedThrough?: string;
  /** Bytes the server wrote that the repository does not hold yet (in the current log). */
  lagBytes?: number;
  /** Seconds since archivedThrough when the server wrote more since; 0 when all is archived. */
  lagSeconds?: number;
  /** Logs archived whole in this look. */
  closed: string[];
  lastCheckedAt: string;
}

export interface BinlogStreamOptions {
  optionFile: string;
  /** A directory of the streamer's own on this machine (created); mariadb-binlog writes there. */
  spool: string;
  /** Seconds between two looks (the recovery point's bound while the server writes). */
  intervalSeconds: number;
  /** The replica server id mariadb-binlog uses: unique among the server's replicas. */
  replicaId: number;
  /** Host and tags of the closed-log snapshots. */
  host?: string;
  tags?: string[];
  signal?: AbortSignal;
  /** Ends after this many looks (a workflow's bounded activity); runs until aborted otherwise. */
  looks?: number;
  /** Segments of the current log before a store rewrites them as one (default SEGMENTS_BEFORE_COMPACTION). */
  segmentsBeforeCompaction?: number;
  onReport?: (r: BinlogStreamReport) => void;
  /** mariadb-binlog stopped (it is restarted) or a look failed (retried at the next). */
  onError?: (what: string, err: Error) => void;
}

const RESTART_MS = 2000;

/** Streams and stores the server's binary log until aborted (or `looks` looks). */
export async function streamBinlogs(repo: Repository, o: BinlogStreamOptions): Promise<void> {
  await fs.mkdir(o.spool, { recursive: true, mode: 0o700 });
  const server = await requireLogBin(o.optionFile);
  const have = new Set(binlogArchives(await loadSnapshots(repo), server).flatMap((s) => s.source.files.map((f) => `${f.name}/${f.size}`)));
  let stored = await loadBinlogPartial(repo, server);
  let archivedThrough: string | undefined = stored?.through;
  let archivedEnd: { file: string; position: number } | undefined = stored ? { file: stored.name, position: stored.size } : undefined;
  let looks = 0;
  const done = () => o.signal?.aborted || (o.looks !== undefined && looks >= o.looks);

  const look = async (streaming: boolean): Promise<void> => {
    const now = new Date();
    const [[file, pos]] = await query(o.optionFile, "SHOW MASTER STATUS");
    const position = Number(pos);
    const logs = (await query(o.optionFile, "SHOW BINARY LOGS")).map(([name, size]) => ({ name, size: Number(size) }));
    const spooled = new Map<string, number>();
    for (const name of await fs.readdir(o.spool)) if (/\.\d+$/.test(name)) spooled.set(name, (await fs.stat(path.join(o.spool, name))).size);

    // Logs the server closed and the spool holds whole.
    const closed = logs.filter((l) => l.name !== file && spooled.get(l.name) === l.size);
    const fresh = closed.filter((l) => !have.has(`${l.name}/${l.size}`));
    if (fresh.length) await archiveClosed(repo, server, o, fresh);
    for (const l of fresh) have.add(`${l.name}/${l.size}`);
    if (closed.length) {
      const last = closed[closed.length - 1].name;
      await dropSegments(repo, server, { upTo: last });
      for (const l of closed) await fs.rm(path.join(o.spool, l.name), { force: true });
      if (!archivedEnd || sequence(last) >= sequence(archivedEnd.file)) {
        archivedEnd = { file: last, position: closed[closed.length - 1].size };
        archivedThrough = now.toISOString();
      }
    }

    // The log the server writes: stored up to the server's position once the spool has it.
    if ((spooled.get(file) ?? 0) >= position && (!stored || stored.name !== file || stored.size < position)) {
      // What is new since the last store, or (a new log, or too many segments) the whole prefix in one.
      const append = stored?.name === file && stored.segments.length < (o.segmentsBeforeCompaction ?? SEGMENTS_BEFORE_COMPACTION);
      const from = append ? stored!.size : 0;
      const key = await saveSegment(repo, server, file, from, await readRange(path.join(o.spool, file), from, position), now);
      if (append) stored = { ...stored!, size: position, through: now.toISOString(), segments: [...stored!.segments, key] };
      else {
        await dropSegments(repo, server, { name: file, keep: key });
        stored = { server, name: file, size: position, through: now.toISOString(), segments: [key] };
      }
      archivedEnd = { file, position };
      archivedThrough = now.toISOString();
    } else if (stored?.name === file && stored.size === position) {
      // Nothing written since the stored partial: everything until now is archived.
      archivedThrough = now.toISOString();
    }
    const behind = archivedEnd?.file === file ? Math.max(0, position - archivedEnd.position) : undefined;
    o.onReport?.({
      server,
      streaming,
      serverFile: file,
      serverPosition: position,
      ...(archivedEnd ? { archivedFile: archivedEnd.file, archivedPosition: archivedEnd.position } : {}),
      ...(archivedThrough ? { archivedThrough } : {}),
      ...(behind !== undefined ? { lagBytes: behind } : {}),
      ...(archivedThrough ? { lagSeconds: behind === 0 ? 0 : Math.max(0, (Date.now() - Date.parse(archivedThrough)) / 1000) } : {}),
      closed: fresh.map((l) => l.name),
      lastCheckedAt: now.toISOString(),
    });
  };

  while (!done()) {
    // From the oldest log the repository lacks whole (the current one, usually): raw mode writes each log from its start.
    let start: string | undefined;
    try {
      const logs = (await query(o.optionFile, "SHOW BINARY LOGS")).map(([name, size]) => ({ name, size: Number(size) }));
      start = logs.find((l, i) => i === logs.length - 1 || !have.has(`${l.name}/${l.size}`))?.name;
    } catch (err) {
      o.onError?.("the server", err as Error);
    }
    if (!start) {
      o.onReport?.({ server, streaming: false, ...(archivedEnd ? { archivedFile: archivedEnd.file, archivedPosition: archivedEnd.position } : {}), ...(archivedThrough ? { archivedThrough } : {}), closed: [], lastCheckedAt: new Date().toISOString() });
      looks++;
      await wait(o.intervalSeconds * 1000, o.signal);
      continue;
    }
    const child = spawn(mysqlTool("mariadb-binlog"), [`--defaults-file=${o.optionFile}`, "--read-from-remote-server", "--raw", "--stop-never", `--stop-never-slave-server-id=${o.replicaId}`, `--result-file=${o.spool}/`, start], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr = (stderr + d.toString("utf8")).slice(-2000)));
    const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
    let running = true;
    void exited.then(() => (running = false));
    try {
      while (!done() && running) {
        await wait(o.intervalSeconds * 1000, o.signal, exited);
        looks++;
        await look(running).catch((err: Error) => o.onError?.("a look at the server", err));
      }
    } finally {
      if (running) child.kill("SIGTERM");
      await exited;
    }
    if (done()) break;
    o.onError?.("mariadb-binlog", new CairnError(`mariadb-binlog stopped streaming (${stderr.trim().split("\n").at(-1) || `exit ${child.exitCode}`}); starting it again`));
    await wait(RESTART_MS, o.signal);
  }
  // A last look stores what was streamed before the stop.
  await (async () => {
    if (!(await fs.readdir(o.spool)).length) return;
    await look(false);
  })().catch((err: Error) => o.onError?.("the last look", err));
}

/** Archives closed logs from the spool as one binary log archive snapshot (under a shared lock, as binlog-archive takes). */
async function archiveClosed(repo: Repository, server: string, o: BinlogStreamOptions, files: { name: string; size: number }[]): Promise<void> {
  await withLock(repo, { exclusive: false, operation: "continuous binary log archive", retryFor: 60_000 }, () =>
    storeBinlogs(repo, server, o.spool, files, { tags: o.tags, host: o.host, check: "prefix" }),
  );
}

/** Bytes [from, to) of a spooled log. */
async function readRange(file: string, from: number, to: number): Promise<Buffer> {
  const fh = await fs.open(file, "r");
  try {
    const buf = Buffer.alloc(to - from);
    let off = 0;
    while (off < buf.length) {
      const { bytesRead } = await fh.read(buf, off, buf.length - off, from + off);
      if (!bytesRead) throw new CairnError(`${file} became shorter than ${to} bytes while it was read`);
      off += bytesRead;
    }
    return buf;
  } finally {
    await fh.close();
  }
}

/** Sleeps `ms`, ended early by the signal or `also`. */
async function wait(ms: number, signal?: AbortSignal, also?: Promise<void>): Promise<void> {
  if (signal?.aborted) return;
  const ac = new AbortController();
  const onAbort = () => ac.abort();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    await Promise.race([sleep(ms, undefined, { signal: ac.signal }).catch(() => undefined), ...(also ? [also] : [])]);
  } finally {
    ac.abort();
    signal?.removeEventListener("abort", onAbort);
  }
}
