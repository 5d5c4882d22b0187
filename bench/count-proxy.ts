/**
 * Counting HTTP proxy for the remote benchmark: forwards 127.0.0.1:LISTEN to an S3
 * server (MinIO) and counts requests by method, with request and response body bytes.
 *
 *   node dist/bench/count-proxy.js LISTEN_PORT http://127.0.0.1:MINIO_PORT
 *
 * Clients point their S3 endpoint at the proxy. Headers go through unchanged, Host
 * included, so the SigV4 signature the client made for the proxy's address still
 * verifies at MinIO. `GET /__bench/take` answers the counts so far as JSON and
 * resets them, so one proxy serves every tool and phase of a run (no bucket name can
 * start with "_", so the path never reaches MinIO).
 */
import { createServer, request, type IncomingMessage } from "node:http";

/** What the clients sent between two takes. */
interface Counts {
  requests: number;
  byMethod: Record<string, number>;
  /** Request body bytes (what the client uploaded). */
  bytesUp: number;
  /** Response body bytes (what the client downloaded). */
  bytesDown: number;
  /** Responses with a status of 400 or more, by status (404s from existence checks are normal). */
  errors: Record<string, number>;
}

const empty = (): Counts => ({ requests: 0, byMethod: {}, bytesUp: 0, bytesDown: 0, errors: {} });

const [listenArg, target] = process.argv.slice(2);
const listenPort = Number(listenArg);
if (!Number.isInteger(listenPort) || !target) {
  process.stderr.write("usage: node dist/bench/count-proxy.js LISTEN_PORT http://HOST:PORT\n");
  process.exit(2);
}
const upstream = new URL(target);
let counts = empty();

function take(res: import("node:http").ServerResponse): void {
  const body = JSON.stringify(counts);
  counts = empty();
  res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function forward(req: IncomingMessage, res: import("node:http").ServerResponse): void {
  const method = req.method ?? "?";
  counts.requests++;
  counts.byMethod[method] = (counts.byMethod[method] ?? 0) + 1;
  req.on("data", (d: Buffer) => (counts.bytesUp += d.length));
  const out = request(
    { host: upstream.hostname, port: upstream.port, method, path: req.url, headers: req.headers },
    (up) => {
      if ((up.statusCode ?? 0) >= 400) counts.errors[String(up.statusCode)] = (counts.errors[String(up.statusCode)] ?? 0) + 1;
      res.writeHead(up.statusCode ?? 502, up.rawHeaders);
      up.on("data", (d: Buffer) => (counts.bytesDown += d.length));
      up.pipe(res);
    },
  );
  out.on("error", (err) => {
    counts.errors.proxy = (counts.errors.proxy ?? 0) + 1;
    if (!res.headersSent) res.writeHead(502);
    res.end(String(err));
  });
  req.pipe(out);
}

createServer((req, res) => (req.url === "/__bench/take" ? take(res) : forward(req, res))).listen(listenPort, "127.0.0.1");
