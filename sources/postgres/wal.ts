import { CairnError } from "../../engine/errors.js";

/**
 * WAL file names, LSNs and the headers PostgreSQL writes at the start of every
 * segment. Layouts are PostgreSQL's (access/xlog_internal.h, access/xlogrecord.h);
 * they have been stable since version 10.
 */

export const WAL_PAGE_SIZE = 8192;
const XLP_LONG_HEADER = 0x0002;
const XLP_FIRST_IS_CONTRECORD = 0x0001;
const LONG_PAGE_HEADER = 40;
const SHORT_PAGE_HEADER = 24;
const RECORD_HEADER = 24;

export type WalFileKind = "segment" | "history" | "backup" | "partial";

/** What kind of file PostgreSQL asks to archive, from its name; undefined for a name it never archives. */
export function walFileKind(name: string): WalFileKind | undefined {
  if (/^[0-9A-F]{24}$/.test(name)) return "segment";
  if (/^[0-9A-F]{8}\.history$/.test(name)) return "history";
  if (/^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/.test(name)) return "backup";
  if (/^[0-9A-F]{24}\.partial$/.test(name)) return "partial";
  return undefined;
}

/** Parses an LSN written as PostgreSQL prints it (`16/B374D848`). */
export function parseLsn(text: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  if (!m) throw new CairnError(`"${text}" is not an LSN: write it as PostgreSQL prints it, such as 0/3000148`);
  return (BigInt("0x" + m[1]) << 32n) | BigInt("0x" + m[2]);
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** A segment's position: its timeline and its number (LSN / segment size). */
export interface SegmentId {
  timeline: number;
  segno: bigint;
}

export function segmentName(timeline: number, segno: bigint, segmentSize: number): string {
  const perId = 0x100000000n / BigInt(segmentSize);
  const hex = (n: bigint | number, w = 8) => n.toString(16).toUpperCase().padStart(w, "0");
  return hex(timeline) + hex(segno / perId) + hex(segno % perId);
}

export function parseSegmentName(name: string, segmentSize: number): SegmentId {
  const perId = 0x100000000n / BigInt(segmentSize);
  return {
    timeline: parseInt(name.slice(0, 8), 16),
    segno: BigInt("0x" + name.slice(8, 16)) * perId + BigInt("0x" + name.slice(16, 24)),
  };
}

/** The segment holding an LSN. */
export function segnoOf(lsn: bigint, segmentSize: number): bigint {
  return lsn / BigInt(segmentSize);
}

/** What the first page of a WAL segment says about it. */
export interface SegmentHeader {
  systemId: string;
  timeline: number;
  segmentSize: number;
  /** LSN of the segment's first byte. */
  pageAddress: bigint;
}

/** Reads a segment's long page header; throws when the bytes are not the start of a WAL segment. */
export function readSegmentHeader(buf: Buffer, name: string): SegmentHeader {
  if (buf.length < LONG_PAGE_HEADER || !(buf.readUInt16LE(2) & XLP_LONG_HEADER)) {
    throw new CairnError(`${name} does not start with a WAL segment header; it is not a PostgreSQL WAL segment`);
  }
  const segmentSize = buf.readUInt32LE(32);
  const blockSize = buf.readUInt32LE(36);
  if (blockSize !== WAL_PAGE_SIZE || segmentSize < 1 << 20 || (segmentSize & (segmentSize - 1)) !== 0) {
    throw new CairnError(`${name} has a WAL header Cairn cannot read (block size ${blockSize}, segment size ${segmentSize})`);
  }
  return { systemId: buf.readBigUInt64LE(24).toString(), timeline: buf.readUInt32LE(4), segmentSize, pageAddress: buf.readBigUInt64LE(8) };
}

/** The database system identifier in a data directory's `global/pg_control`. */
export function systemIdFromControl(control: Buffer): string {
  if (control.length < 8) throw new CairnError("global/pg_control is too short to be a PostgreSQL control file");
  return control.readBigUInt64LE(0).toString();
}

/** One timeline switch in a `.history` file: the parent timeline ended at `switchLsn`. */
export interface TimelineSwitch {
  parent: number;
  switchLsn: bigint;
}

/** Parses a timeline history file (`00000002.history`): one line per ancestor timeline. */
export function parseHistory(text: string): TimelineSwitch[] {
  const out: TimelineSwitch[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*(\d+)\s+([0-9A-Fa-f]+\/[0-9A-Fa-f]+)/.exec(line);
    if (m) out.push({ parent: Number(m[1]), switchLsn: parseLsn(m[2]) });
  }
  return out;
}

/** What a segment holds that recovery targets refer to: commit times, transaction ids, restore points. */
export interface SegmentSummary {
  commits: number;
  /** Times (ISO) of the first and last commit or abort record in the segment. */
  firstCommit?: string;
  lastCommit?: string;
  /** Lowest and highest transaction id that committed or aborted in the segment. */
  minXid?: number;
  maxXid?: number;
  restorePoints: { name: string; lsn: string; time: string }[];
}

const RM_XLOG_ID = 0;
const RM_XACT_ID = 1;
const XLOG_SWITCH = 0x40;
const XLOG_RESTORE_POINT = 0x70;
const XACT_OPMASK = 0x70;
const POSTGRES_EPOCH_MS = 946_684_800_000;

function pgTime(us: bigint): string {
  return new Date(POSTGRES_EPOCH_MS + Number(us / 1000n)).toISOString();
}

/**
 * Reads the records of one segment and sums up its commits and restore points.
 * A record that runs into the next segment is left to that segment's reader
 * (which skips its tail), so a commit may rarely go uncounted; the summary only
 * guides the choice of a base backup, recovery itself reads the WAL.
 */
export function summarizeSegment(seg: Buffer, header: SegmentHeader): SegmentSummary {
  const summary: SegmentSummary = { commits: 0, restorePoints: [] };
  // The segment as one stream of record bytes, with page headers cut out; `physical` maps back to LSNs.
  const pages = Math.floor(seg.length / WAL_PAGE_SIZE);
  const payload = WAL_PAGE_SIZE - SHORT_PAGE_HEADER;
  const firstPayload = WAL_PAGE_SIZE - LONG_PAGE_HEADER;
  const streamLength = pages ? firstPayload + (pages - 1) * payload : 0;
  const physical = (pos: number) => (pos < firstPayload ? LONG_PAGE_HEADER + pos : WAL_PAGE_SIZE * (1 + Math.floor((pos - firstPayload) / payload)) + SHORT_PAGE_HEADER + ((pos - firstPayload) % payload));
  const read = (pos: number, n: number): Buffer | undefined => {
    if (pos + n > streamLength) return undefined;
    const out = Buffer.allocUnsafe(n);
    let done = 0;
    while (done < n) {
      const p = physical(pos + done);
      const pageEnd = (Math.floor(p / WAL_PAGE_SIZE) + 1) * WAL_PAGE_SIZE;
      const take = Math.min(n - done, pageEnd - p);
      seg.copy(out, done, p, p + take);
      done += take;
    }
    return out;
  };
  let pos = 0;
  if (seg.readUInt16LE(2) & XLP_FIRST_IS_CONTRECORD) pos = seg.readUInt32LE(16);
  let previous: bigint | undefined;
  for (;;) {
    pos = (pos + 7) & ~7;
    const head = read(pos, RECORD_HEADER);
    if (!head) break;
    const total = head.readUInt32LE(0);
    if (total < RECORD_HEADER) break;
    const record = read(pos, total);
    if (!record) break;
    // A record that does not point back at the one before is left over from a recycled segment: the WAL ends here.
    const lsn = header.pageAddress + BigInt(physical(pos));
    if (previous !== undefined && record.readBigUInt64LE(8) !== previous) break;
    previous = lsn;
    const xid = record.readUInt32LE(4);
    const info = record[16];
    const rmid = record[17];
    const main = mainData(record);
    if (rmid === RM_XACT_ID && main && main.length >= 8) {
      const op = info & XACT_OPMASK;
      if (op === 0x00 || op === 0x20) {
        const time = pgTime(main.readBigInt64LE(0));
        summary.commits++;
        summary.firstCommit ??= time;
        summary.lastCommit = time;
        if (xid) {
          summary.minXid = Math.min(summary.minXid ?? xid, xid);
          summary.maxXid = Math.max(summary.maxXid ?? xid, xid);
        }
      }
    } else if (rmid === RM_XLOG_ID && (info & 0xf0) === XLOG_RESTORE_POINT && main && main.length >= 8) {
      const name = main.subarray(8, 72);
      const end = name.indexOf(0);
      summary.restorePoints.push({
        name: name.subarray(0, end < 0 ? name.length : end).toString("utf8"),
        lsn: formatLsn(lsn),
        time: pgTime(main.readBigInt64LE(0)),
      });
    } else if (rmid === RM_XLOG_ID && (info & 0xf0) === XLOG_SWITCH) break;
    pos += total;
  }
  return summary;
}

/** The main data of a record: its last bytes, whose length the block headers end with. */
function mainData(record: Buffer): Buffer | undefined {
  let p = RECORD_HEADER;
  while (p < record.length) {
    const id = record[p];
    if (id === 255) {
      const len = record[p + 1];
      return record.subarray(record.length - len);
    }
    if (id === 254) {
      const len = record.readUInt32LE(p + 1);
      return record.subarray(record.length - len);
    }
    if (id === 253) p += 3;
    else if (id === 252) p += 5;
    else if (id <= 32) {
      const forkFlags = record[p + 1];
      p += 4;
      if (forkFlags & 0x10) {
        const bimgInfo = record[p + 4];
        p += 5;
        // A compressed image with a hole records the hole's length (PostgreSQL 15: pglz 0x04, lz4 0x08, zstd 0x10).
        if (bimgInfo & 0x01 && bimgInfo & 0x1c) p += 2;
      }
      if (!(forkFlags & 0x80)) p += 12;
      p += 4;
    } else return undefined;
  }
  return undefined;
}
