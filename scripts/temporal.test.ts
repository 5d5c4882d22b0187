import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { tempDir } from "../test/helpers.js";
import { findTemporalCli, installedTemporalCli, startDevServer } from "./temporal.js";

/** A file that passes for an executable (findTemporalCli only checks that it could run it). */
function fakeCli(file: string): string {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, "#!/bin/sh\n");
  chmodSync(file, 0o755);
  return file;
}

describe("findTemporalCli", () => {
  const saved = { ...process.env };
  const tmp = tempDir("cairn-cli-");
  afterEach(() => {
    process.env = { ...saved };
  });
  afterAll(() => tmp.cleanup());

  it("prefers TEMPORAL_CLI_PATH, then temporal on PATH, then the cached build, and says which it uses", async () => {
    const onPath = fakeCli(path.join(tmp.dir, "bin", "temporal"));
    const cached = fakeCli(path.join(tmp.dir, "cache", "cairn", "bin", "temporal"));
    const explicit = fakeCli(path.join(tmp.dir, "explicit", "temporal"));
    process.env.XDG_CACHE_HOME = path.join(tmp.dir, "cache");
    const lines: string[] = [];
    const log = (l: string) => lines.push(l);

    process.env.PATH = path.join(tmp.dir, "bin");
    process.env.TEMPORAL_CLI_PATH = explicit;
    expect(await findTemporalCli(log)).toBe(explicit);
    delete process.env.TEMPORAL_CLI_PATH;
    expect(await findTemporalCli(log)).toBe(onPath);
    process.env.PATH = path.join(tmp.dir, "empty");
    expect(await findTemporalCli(log)).toBe(cached);
    expect(lines).toEqual([`using TEMPORAL_CLI_PATH=${explicit}`, `using ${onPath} (on PATH)`, `using the cached build ${cached}`]);
  });

  it("refuses a TEMPORAL_CLI_PATH that is not an executable, saying how to fix it", async () => {
    process.env.TEMPORAL_CLI_PATH = path.join(tmp.dir, "missing", "temporal");
    await expect(findTemporalCli(() => undefined)).rejects.toThrow(/is not an executable file; fix the path or unset it/);
  });
});

describe("startDevServer", () => {
  const saved = { ...process.env };
  const tmp = tempDir("cairn-devserver-");
  afterEach(() => {
    process.env = { ...saved };
  });
  afterAll(() => tmp.cleanup());

  it("tries again on other ports when the server exits at start, and keeps the head of what it printed when it gives up", async () => {
    const real = installedTemporalCli(() => undefined);
    expect(real, "the tests need the Temporal CLI (npm test provisions it)").toBeTruthy();
    // A CLI that fails at its first start as a server does whose port was taken, then is the real one.
    const marker = path.join(tmp.dir, "failed-once");
    const flaky = path.join(tmp.dir, "flaky", "temporal");
    mkdirSync(path.dirname(flaky), { recursive: true });
    writeFileSync(flaky, `#!/bin/sh\nif [ ! -e ${marker} ]; then : > ${marker}; echo "panic: listen tcp 127.0.0.1:7243: bind: address already in use" >&2; exit 2; fi\nexec ${real} "$@"\n`);
    chmodSync(flaky, 0o755);
    process.env.TEMPORAL_CLI_PATH = flaky;
    const lines: string[] = [];
    const server = await startDevServer({ headless: true, log: (l) => lines.push(l) });
    try {
      expect(lines.some((l) => /exited at start \(the Temporal dev server did not start: it exited with 2\); trying again on other ports/.test(l)), lines.join("\n")).toBe(true);
      expect(server.address).toMatch(/^127\.0\.0\.1:\d+$/);
    } finally {
      await server.stop();
    }

    // A server that keeps exiting is an error after three tries, naming why from its first lines.
    const broken = path.join(tmp.dir, "broken", "temporal");
    mkdirSync(path.dirname(broken), { recursive: true });
    writeFileSync(broken, `#!/bin/sh\necho "panic: the first line says why" >&2; i=0; while [ $i -lt 400 ]; do echo "stack frame $i" >&2; i=$((i+1)); done; exit 2\n`);
    chmodSync(broken, 0o755);
    process.env.TEMPORAL_CLI_PATH = broken;
    lines.length = 0;
    await expect(startDevServer({ headless: true, log: (l) => lines.push(l) })).rejects.toThrow(/did not start: it exited with 2\npanic: the first line says why/);
    expect(lines.filter((l) => l.includes("trying again"))).toHaveLength(2);
  }, 120_000);
});
