import { request as httpRequest } from "node:http";
import type { ApiServer } from "../api/server.js";

/** A job as GET /v1/jobs/{id} answers. */
export interface Job {
  id: string;
  kind: string;
  status: string;
  phase: string;
  progress: { filesDone: number; bytesDone: number; bytesTotal: number; bytesPerSecond: number; etaSeconds: number | null; stopping?: boolean };
  snapshotId?: string;
  error?: string;
  planId?: string;
  result?: Record<string, unknown>;
}

/** Calls a running API over HTTP with a token (its generated admin token by default), as a user's script would. */
export function apiClient(api: Pick<ApiServer, "url" | "token">, token = api.token) {
  async function call<T = Record<string, unknown>>(method: string, url: string, body?: unknown): Promise<{ status: number; body: T }> {
    // One connection per request (agent: false sends Connection: close): a kept-alive
    // connection the server closes just as it is reused fails before any answer, which an
    // event loop busy with a restore in this process made likely, and a POST cannot be resent.
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const res = await new Promise<{ status: number; type: string; text: string }>((resolve, reject) => {
      const req = httpRequest(
        api.url + url,
        {
          method,
          agent: false,
          headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(payload ? { "Content-Type": "application/json", "Content-Length": payload.length } : {}) },
        },
        (answer) => {
          const chunks: Buffer[] = [];
          answer.on("data", (c: Buffer) => chunks.push(c));
          answer.on("end", () => resolve({ status: answer.statusCode ?? 0, type: String(answer.headers["content-type"] ?? ""), text: Buffer.concat(chunks).toString("utf8") }));
          answer.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(payload);
    });
    const text = res.text;
    const isJson = /json/.test(res.type);
    return { status: res.status, body: (text ? (isJson ? JSON.parse(text) : text) : undefined) as T };
  }

  async function ok<T = Record<string, unknown>>(method: string, url: string, body?: unknown): Promise<T> {
    const res = await call<T>(method, url, body);
    if (res.status >= 300) throw new Error(`${method} ${url} -> ${res.status}: ${JSON.stringify(res.body)}`);
    return res.body;
  }

  /** Polls a job until `until` holds; every answer seen is kept so a test can look at the running ones. */
  async function pollJob(jobId: string, until: (job: Job) => boolean, seen: Job[] = []): Promise<Job> {
    for (let i = 0; i < 600; i++) {
      const job = await ok<Job>("GET", `/v1/jobs/${jobId}`);
      seen.push(job);
      if (until(job)) return job;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`job ${jobId} never reached the expected state; last: ${JSON.stringify(seen.at(-1))}`);
  }

  /** Visibility is eventually consistent: list until the filter shows what we expect. */
  async function listUntil(query: string, until: (jobs: Job[]) => boolean): Promise<Job[]> {
    for (let i = 0; i < 100; i++) {
      const { jobs } = await ok<{ jobs: Job[] }>("GET", `/v1/jobs?${query}`);
      if (until(jobs)) return jobs;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`GET /v1/jobs?${query} never showed the expected jobs`);
  }

  return { call, ok, pollJob, listUntil };
}
