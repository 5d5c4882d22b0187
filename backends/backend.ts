/**
 * The storage contract every destination implements. Keys are slash-separated
 * relative names such as `data/ab/abcdef…` or `snapshots/<id>`.
 *
 * MUST hold for every implementation:
 * - `put` is atomic: a reader sees either nothing or the whole object, even when
 *   the writer dies half way. Putting an existing key replaces it (the engine never
 *   relies on that: its files are write-once).
 * - `get` of a missing key throws a BackendError of kind `not-found`.
 * - `list(prefix)` yields every key under the prefix (a "directory" ending in `/`),
 *   nested ones included, with its size, in no set order; never a half-written object.
 * - `delete` of a missing key succeeds (idempotent).
 * - Errors are classified so callers retry transient ones and stop at permanent ones.
 */
export interface Backend {
  /** A human-readable location, for messages. */
  readonly location: string;
  /** Stores an object; `body` may come in parts, stored in order as one object (a pack is its blobs). */
  put(key: string, body: Body): Promise<void>;
  get(key: string, range?: ByteRange): Promise<Buffer>;
  stat(key: string): Promise<ObjectInfo>;
  list(prefix: string): AsyncIterable<ObjectInfo>;
  delete(key: string): Promise<void>;
  /** True when the location holds anything at all (used to tell "no repository" from "empty"). */
  exists(key: string): Promise<boolean>;
  /** Creates the bucket or container the location names when it is missing (object stores; `cairn init` calls it). Idempotent. */
  ensureContainer?(): Promise<void>;
  /**
   * Immutable storage (S3 Object Lock). Only backends that have it implement these.
   * The retention new objects get (every key but `locks/…`, which must stay deletable), if any.
   */
  objectLock?(): ObjectLock | undefined;
  /** Gives new objects this retention unless the location was opened with its own (the repository config records it). */
  useObjectLock?(lock: ObjectLock): void;
  /** Until when the object may be neither deleted nor replaced; undefined when it may be (or is missing). */
  retainedUntil?(key: string): Promise<Date | undefined>;
  /**
   * Starts an object written piece by piece and named once complete (see StagedObject),
   * so its bytes need not all be held in memory: a pack is named by the hash of its
   * bytes, known only at its end. `dir` is a directory (a key prefix without the
   * slash) where the partial bytes may be kept; the key given to commit may lie in
   * another one. Backends that can keep partial objects outside memory offer it.
   */
  stage?(dir: string): Promise<StagedObject>;
  close?(): Promise<void>;
}

/**
 * An object being written piece by piece (Backend.stage). MUST hold: nothing is
 * visible under any key, nor listed, before commit; commit is atomic like put; write
 * resolves once the piece is written (the caller may then free it), and a write that
 * failed may be tried again: it writes the same bytes at the same place. Writes are
 * made one after the other, never two at once. abort removes what was written and is
 * idempotent; so is abort after commit (it does nothing then).
 */
export interface StagedObject {
  write(part: Uint8Array): Promise<void>;
  commit(key: string): Promise<void>;
  abort(): Promise<void>;
}

export type Body = Uint8Array | readonly Uint8Array[];

/** The parts of a body, as a list. */
export function bodyParts(body: Body): readonly Uint8Array[] {
  return body instanceof Uint8Array ? [body] : body;
}

export interface ByteRange {
  offset: number;
  length: number;
  /**
   * A buffer of at least `length` bytes the backend may read into, for a caller that reads
   * many ranges and reuses its buffers: the result is then a view of its first `length`
   * bytes. A backend that cannot read in place ignores it and returns a buffer of its own.
   */
  into?: Buffer;
}

export interface ObjectInfo {
  key: string;
  size: number;
}

/** Write-once retention: objects cannot be deleted or replaced for `days` after they are written. */
export interface ObjectLock {
  /** GOVERNANCE: users with a bypass permission may still delete; COMPLIANCE: nobody may, root included. */
  mode: "GOVERNANCE" | "COMPLIANCE";
  days: number;
}

export type BackendErrorKind = "not-found" | "permanent" | "transient";

/**
 * What went wrong, for errors whose message the backend wrote itself (no text
 * from the server in it), so it may be shown to whoever asked: the API shows
 * only these, and a sentence of its own for the rest.
 */
export type BackendErrorReason = "access-denied" | "no-credentials" | "container-missing" | "host-key" | "configuration" | "disk-full";

/** An error from a backend, classified so the layer above can decide what to retry. */
export class BackendError extends Error {
  /** Set on a refused delete of an object under retention (kind `permanent`): when it may be deleted. */
  readonly retainedUntil?: Date;
  readonly reason?: BackendErrorReason;

  constructor(
    readonly kind: BackendErrorKind,
    message: string,
    options?: { cause?: unknown; retainedUntil?: Date; reason?: BackendErrorReason },
  ) {
    super(message, options);
    this.name = "BackendError";
    this.retainedUntil = options?.retainedUntil;
    this.reason = options?.reason;
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof BackendError && err.kind === "not-found";
}

/** `exists` for backends whose cheapest existence test is a stat: not-found means no. */
export async function existsByStat(backend: Pick<Backend, "stat">, key: string): Promise<boolean> {
  try {
    await backend.stat(key);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}
