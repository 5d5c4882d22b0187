import { spawn } from "node:child_process";
import { mkdtempSync, promises as fs, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { runBackendConformance } from "./conformance.js";
import { LocalBackend } from "./local.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** Puts KEY (BYTES bytes, in 1 MiB parts) into ROOT from a separate process. */
const WRITER = `
import { LocalBackend } from ${JSON.stringify(path.join(HERE, "local.ts"))};
import { deterministicPart } from ${JSON.stringify(path.join(HERE, "conformance.ts"))};
const { ROOT, KEY, BYTES } = process.env;
const parts = Array.from({ length: Number(BYTES) / 1048576 }, (_, i) => deterministicPart("killed", i, 1048576));
await new LocalBackend(ROOT).put(KEY, parts);
`;

runBackendConformance(
  "local",
  async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "cairn-local-"));
    return { backend: new LocalBackend(dir), cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
  },
  {
    killableWriter: {
      spawn: (backend, key, bytes) =>
        spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", WRITER], {
          env: { ...process.env, ROOT: backend.location, KEY: key, BYTES: String(bytes) },
          stdio: "ignore",
        }),
      // The temporary file of the put exists and has data in it.
      writing: async (backend) => {
        const dir = path.join(backend.location, "killed");
        const names = await fs.readdir(dir).catch(() => [] as string[]);
        for (const name of names.filter((n) => n.startsWith(".tmp-"))) {
          if ((await fs.stat(path.join(dir, name)).catch(() => undefined))?.size) return true;
        }
        return false;
      },
    },
  },
);
