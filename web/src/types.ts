/** The shapes of the API answers the dashboard reads (see /openapi.json: Plan, Job, Snapshot, Session). */

export interface Session {
  tokenId: string;
  name: string;
  role: string;
  /** null when the server has no GET /v1/session: then every action is offered and the API's 403 says what is refused. */
  permissions: string[] | null;
  expiresAt: string | null;
  /** The dashboard session (cookie): when it ends if unused, and at the latest. */
  session?: { idleExpiresAt: string; expiresAt: string } | null;
}

export interface Plan {
  id: string;
  name: string;
  repositoryId: string;
  source: { type: string; paths?: string[]; [k: string]: unknown };
  schedule: { cron: string; timezone?: string } | null;
  paused: boolean;
}

export interface Repository {
  id: string;
  name: string;
  url: string;
}

export interface JobProgress {
  filesDone: number;
  bytesDone: number;
  bytesTotal: number;
  bytesPerSecond: number;
  etaSeconds: number | null;
}

export interface JobSummary {
  id: string;
  kind: string;
  status: "running" | "completed" | "failed" | "cancelled";
  planId?: string;
  snapshotId?: string;
  error?: string;
  startedAt: string;
  finishedAt?: string;
}

export interface Job extends JobSummary {
  phase: string;
  progress: JobProgress;
  warnings: string[];
  result?: Record<string, unknown>;
}

export interface Snapshot {
  id: string;
  time: string;
  host: string;
  paths: string[];
  tags: string[];
  summary?: Record<string, number>;
}

