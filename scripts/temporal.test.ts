import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { tempDir } from "../test/helpers.js";
import { findTemporalCli } from "./temporal.js";

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
