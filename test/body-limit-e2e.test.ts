import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, tempDir } from "./helpers.js";

/** A figure of /proc/<pid>/status in KiB: VmRSS (now) or VmHWM (the peak so far). */
function memoryKiB(pid: number, field: "VmRSS" | "VmHWM"): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m![1]);
}

/** Streams `total` bytes of JSON-looking data in 64 KiB chunks, chunked (no Content-Length), and resolves with the answer. */
function streamBody(url: string, token: string, total: number): Promise<{ status: number; body: string; sent: number }> {
  return new Promise((resolve, reject) => {
    let sent = 0;
    const chunk = Buffer.alloc(64 * 1024, "a");
    const req = httpRequest(url, { method: "POST", headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", "Transfer-Encoding": "chunked" } }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (d: Buffer) => parts.push(d));
      res.on("end", () => {
        req.destroy();
        resolve({ status: res.statusCode!, body: Buffer.concat(parts).toString(), sent });
      });
    });
    // The server may close the connection once it has answered; what was not sent then does not matter.
    req.on("error", (err) => (sent > 0 ? undefined : reject(err)));
    const pump = () => {
      while (sent < total) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once("drain", pump);
      }
      req.end();
    };
    req.write('{"name":"');
    pump();
  });
}

/** The API as production runs it (node dist/api/server.js), so its memory is its own. */
describe("request body limit", () => {
  const tmp = tempDir("cairn-body-limit-");
  let server: ChildProcess;
  let url: string;
  let token: string;

  beforeAll(async () => {
    server = spawn(process.execPath, [path.join(ROOT, "dist", "api", "server.js")], {
      env: { ...process.env, CAIRN_DATA_DIR: tmp.dir, CAIRN_API_PORT: "0", CAIRN_API_TOKEN: "", TEMPORAL_ADDRESS: "127.0.0.1:1", DATABASE_URL: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    await new Promise<void>((resolve, reject) => {
      server.stdout!.on("data", (d: Buffer) => {
        output += d.toString();
        const listening = /listening on (\S+)/.exec(output);
        const admin = /admin token \(shown once, stored hashed\): (\S+)/.exec(output);
        if (listening && admin) {
          url = listening[1];
          token = admin[1];
          resolve();
        }
      });
      server.stderr!.on("data", (d: Buffer) => (output += d.toString()));
      server.once("exit", (code) => reject(new Error(`the API exited (${code}):\n${output}`)));
    });
  });

  afterAll(async () => {
    if (server && server.exitCode === null) {
      const exited = new Promise((r) => server.once("exit", r));
      server.kill("SIGTERM");
      await exited;
    }
    tmp.cleanup();
  });

  it("answers a 50 MiB streamed body with 413 and keeps its memory bounded", async () => {
    // Warm up the route (code paths, caches) so the baseline is the server at work, not at rest.
    const small = await streamBody(`${url}/v1/plans`, token, 64 * 1024);
    expect(small.status).toBe(400);
    const before = memoryKiB(server.pid!, "VmRSS");
    writeFileSync(`/proc/${server.pid}/clear_refs`, "5"); // resets VmHWM to the current RSS

    const res = await streamBody(`${url}/v1/plans`, token, 50 * 1024 * 1024);
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body)).toMatchObject({ status: 413, title: "Request body too large" });

    const peak = memoryKiB(server.pid!, "VmHWM");
    // Holding the body would add 50 MiB (more as a string); reading up to the 1 MiB limit adds a few.
    expect(peak - before, `peak ${peak} KiB, before ${before} KiB`).toBeLessThan(24 * 1024);
    // And the server still serves.
    const again = await fetch(`${url}/v1/plans`, { headers: { Authorization: `Bearer ${token}` } });
    expect(again.status).toBe(200);
  });
});
