import * as path from "node:path";
import type { Command } from "commander";
import { WalArchive } from "../sources/postgres/archive.js";
import { runReceiver } from "../sources/postgres/receive.js";
import { globals, output, untilSignalled, withRepository } from "./common.js";

export function register(pg: Command): void {
  pg.command("receive")
    .description("stream WAL with pg_receivewal through a replication slot and archive each segment as it completes (near-zero RPO, instead of or next to archive_command); runs until SIGTERM or SIGINT, then archives the segment in progress as .partial")
    .requiredOption("--url <url>", "connection to the server, as for psql (postgresql://user@host:port/db); the user needs the REPLICATION attribute")
    .requiredOption("--spool <dir>", "directory pg_receivewal writes into (one per cluster; it resumes from what it finds there)")
    .option("--slot <name>", "physical replication slot, created when missing (the server keeps the WAL not yet received: drop the slot when you stop receiving for good)", "cairn")
    .action(async (o: { url: string; spool: string; slot: string }, cmd: Command) => {
      const opts = globals(cmd);
      const signal = untilSignalled();
      const line = (record: Record<string, unknown>, text: string) => !opts.quiet && process.stdout.write(opts.json ? JSON.stringify(record) + "\n" : `${text}\n`);
      const result = await withRepository(
        opts,
        "none",
        "pg receive",
        (repo) =>
          runReceiver(new WalArchive(repo), {
            url: o.url,
            slot: o.slot,
            spool: path.resolve(o.spool),
            signal,
            onStreaming: (s) => line({ streaming: true, ...s }, `streaming WAL of system ${s.systemId} through slot ${s.slot}${s.slotCreated ? " (created)" : ""}`),
            onPushed: (name, outcome) => line({ file: name, outcome }, `${name} ${outcome}`),
            onError: (what, err) => process.stderr.write(`cairn: ${what}: ${err.message}\n`),
          }),
        { loadIndex: false },
      );
      output(opts, { stopped: true, pushed: result.pushed.length }, () => `stopped; ${result.pushed.length} files archived`);
    });
}
