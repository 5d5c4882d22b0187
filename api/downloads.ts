import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { Hono } from "hono";
import { ApiError } from "./errors.js";

/** Where a worker PUTs a download's bytes: outside /v1, since the worker holds no API token, only the upload's one-time secret. */
export const UPLOAD_PATH = "/worker-uploads";

/** A worker's upload as it arrives: its headers, and its body to pass on to the waiting caller. */
export interface Upload {
  headers: Headers;
  /** The bytes as the worker sends them; cancelling it cuts the worker's upload off. */
  body: ReadableStream<Uint8Array>;
  /** Settles when the body was read to its end (true) or broke off (false: the worker failed, or the caller went away). */
  ended: Promise<boolean>;
}

interface Waiting {
  deliver(upload: Upload): void;
}

/**
 * Downloads waiting for their worker. The API never opens a repository, so a
 * download is streamed by a worker to a one-time address of this API process,
 * and passed through to the caller as it arrives: the worker's reads are held
 * back by TCP flow control on both legs, never buffered here beyond a few chunks.
 */
export class DownloadChannels {
  private readonly waiting = new Map<string, Waiting>();

  /** A new one-time address (its secret in the path) and the upload that will arrive there. */
  open(): { secret: string; arrived: Promise<Upload>; close(): void } {
    const secret = randomBytes(32).toString("hex");
    let deliver!: (upload: Upload) => void;
    const arrived = new Promise<Upload>((resolve) => (deliver = resolve));
    this.waiting.set(secret, { deliver });
    return { secret, arrived, close: () => this.waiting.delete(secret) };
  }

  /** Hands an upload to the download waiting for it; false when none is (any more). */
  take(secret: string, upload: Upload): boolean {
    const waiting = this.waiting.get(secret);
    if (!waiting) return false;
    this.waiting.delete(secret);
    waiting.deliver(upload);
    return true;
  }
}

/**
 * The route workers PUT downloads to. The answer waits until the caller has
 * taken every byte: 204 then; when the caller went away the connection is cut,
 * which stops the worker.
 */
export function uploadRoutes(channels: DownloadChannels) {
  return new Hono().put(`${UPLOAD_PATH}/:secret`, async (c) => {
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
    if (!incoming) throw new ApiError(500, "Uploads need a Node server", "worker uploads are served by the Node HTTP server (api/server.ts) only");
    const ended = new Promise<boolean>((resolve) => {
      incoming.once("end", () => resolve(true));
      incoming.once("close", () => resolve(incoming.readableEnded));
    });
    const upload: Upload = { headers: c.req.raw.headers, body: pulled(incoming), ended };
    if (!channels.take(c.req.param("secret"), upload)) {
      incoming.resume();
      return c.body(null, 410);
    }
    return (await ended) ? c.body(null, 204) : c.body(null, 410);
  });
}

/** Bytes held here per download at most: the worker's connection waits (TCP flow control) while the caller's is this far behind. */
const BUFFERED_BYTES = 1024 * 1024;

/**
 * The upload as a web stream that reads from the socket only as the caller takes
 * the bytes. (Readable.toWeb counts chunks, not bytes, against the request's
 * high-water mark of 16384: it would buffer up to a gigabyte for a slow caller.)
 */
function pulled(incoming: IncomingMessage): ReadableStream<Uint8Array> {
  incoming.pause();
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        let settled = false;
        incoming.on("data", (chunk: Buffer) => {
          controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          if ((controller.desiredSize ?? 0) <= 0) incoming.pause();
        });
        incoming.once("end", () => {
          settled = true;
          controller.close();
        });
        incoming.once("close", () => {
          if (settled || incoming.readableEnded) return;
          settled = true;
          controller.error(new Error("the worker's upload broke off before its end"));
        });
      },
      pull() {
        incoming.resume();
      },
      cancel() {
        incoming.destroy();
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: BUFFERED_BYTES }),
  );
}
