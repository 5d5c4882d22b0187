/**
 * Caps on what one request may carry, so no input makes the API or a worker
 * hold an unbounded amount: the body size, and the length of every string and
 * list a schema accepts (a test walks /openapi.json to hold every route to it).
 */
export const LIMITS = {
  /** Request bodies larger than this get a 413 before they are read further. */
  bodyBytes: 1024 * 1024,
  /** Ids of plans, repositories, tokens. */
  id: 100,
  /** Filesystem paths (PATH_MAX on Linux). */
  path: 4096,
  /** Paths one plan backs up. */
  paths: 100,
  /** A glob pattern. */
  pattern: 1024,
  /** Include or exclude patterns in one plan or restore. */
  patterns: 1000,
  /** A repository location. */
  url: 2048,
  /** A password. */
  secret: 1024,
  /** One credential value (an SSH private key fits). */
  credential: 16 * 1024,
} as const;
