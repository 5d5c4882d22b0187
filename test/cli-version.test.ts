import { readFileSync } from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { cairnOk } from "./helpers.js";

const version = JSON.parse(readFileSync(path.join(import.meta.dirname, "..", "package.json"), "utf8")).version as string;

describe("cairn --version and --help", () => {
  it("--version and -V print the package's version and nothing else", async () => {
    for (const flag of ["--version", "-V"]) {
      const r = await cairnOk([flag]);
      expect(r.stdout.trim()).toBe(version);
      expect(r.stderr).toBe("");
    }
  });

  it("--help still lists every verb (the version shortcut loads none)", async () => {
    const r = await cairnOk(["--help"]);
    for (const verb of ["init", "backup", "restore", "check", "prune", "pg", "mysql", "platform"]) {
      expect(r.stdout).toMatch(new RegExp(`^  ${verb}\\b`, "m"));
    }
  });

  it("a verb's --version is still the version (commander's own handling)", async () => {
    const r = await cairnOk(["snapshots", "--version"]);
    expect(r.stdout.trim()).toBe(version);
  });
});
