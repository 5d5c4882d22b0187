import { randomBytes } from "node:crypto";
import { cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cairn, cairnOk, tempDir, type CliResult } from "./helpers.js";

/**
 * One flipped byte anywhere in a repository must never go unnoticed: check
 * --read-data names the damaged object, and restore either fails or (when the
 * byte is in something the restore does not read) writes the right bytes.
 */
describe("tampering with one byte of a repository (CLI, local repository)", () => {
  const tmp = tempDir("cairn-tamper-");
  const src = path.join(tmp.dir, "src");
  const pristine = path.join(tmp.dir, "pristine");
  const files: Record<string, Buffer> = {
    "big.bin": randomBytes(3 * 1024 * 1024 + 12_345),
    "notes.txt": Buffer.from("a line that compresses well\n".repeat(20_000)),
    "sub/small.txt": Buffer.from("small"),
  };
  let caseNo = 0;

  /** Files under a directory of the repository, as repository-relative paths. */
  const filesIn = (dir: string): string[] =>
    readdirSync(path.join(pristine, dir), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => path.relative(pristine, path.join(e.parentPath, e.name)));

  /** A fresh copy of the backed-up repository with one byte of `file` flipped at `at(bytes)`. */
  const tampered = (file: string, at: (bytes: Buffer) => number): string => {
    const repo = path.join(tmp.dir, `case-${++caseNo}`);
    cpSync(pristine, repo, { recursive: true });
    const bytes = readFileSync(path.join(repo, file));
    const pos = at(bytes);
    expect(pos).toBeGreaterThanOrEqual(0);
    expect(pos).toBeLessThan(bytes.length);
    bytes[pos] ^= 0x01;
    writeFileSync(path.join(repo, file), bytes);
    return repo;
  };

  /** Runs check --read-data and a full restore of the damaged copy side by side. */
  const probe = async (repo: string): Promise<{ check: CliResult; restore: CliResult; restoredCorrectly: () => boolean }> => {
    const target = `${repo}-restore`;
    const [check, restore] = await Promise.all([cairn(["-r", repo, "check", "--read-data"]), cairn(["-r", repo, "restore", "latest", "--target", target])]);
    const restoredCorrectly = () => Object.entries(files).every(([name, content]) => readFileSync(path.join(target, src, name)).equals(content));
    if (restore.code === 0) expect(restoredCorrectly(), `restore of ${repo} exited 0 but wrote wrong bytes`).toBe(true);
    return { check, restore, restoredCorrectly };
  };

  const expectNamed = (check: CliResult, file: string) => {
    expect(check.code, check.stdout + check.stderr).not.toBe(0);
    expect(check.stdout + check.stderr).toContain(path.basename(file));
  };

  beforeAll(async () => {
    for (const [name, content] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(src, name)), { recursive: true });
      writeFileSync(path.join(src, name), content);
    }
    await cairnOk(["-r", pristine, "init"]);
    await cairnOk(["-r", pristine, "backup", src]);
    const clean = await cairnOk(["-r", pristine, "check", "--read-data"]);
    expect(clean.stdout).toContain("no errors were found");
    // One data pack (several chunks of big.bin) and one tree pack.
    expect(filesIn("data")).toHaveLength(2);
  });
  afterAll(() => tmp.cleanup());

  const packPositions: [string, (b: Buffer) => number, "fails" | "restores"][] = [
    ["its first byte", () => 0, "fails"],
    ["its middle", (b) => b.length >> 1, "fails"],
    // The encrypted header at the end lists the blobs; restore reads blobs through the index only.
    ["its encrypted header", (b) => b.length - 20, "restores"],
    ["the header length field", (b) => b.length - 1, "restores"],
  ];
  for (const [where, at, restoreOutcome] of packPositions) {
    it(`detects a flipped byte in ${where} of every pack; restore ${restoreOutcome === "fails" ? "fails" : "still writes the right bytes"}`, async () => {
      for (const pack of filesIn("data")) {
        const { check, restore, restoredCorrectly } = await probe(tampered(pack, at));
        expectNamed(check, pack);
        expect(check.stdout).toMatch(/\d+ errors?/);
        if (restoreOutcome === "fails") expect(restore.code, restore.stdout).not.toBe(0);
        else {
          expect(restore.code, restore.stderr).toBe(0);
          expect(restoredCorrectly()).toBe(true);
        }
      }
    });
  }

  it("detects a flipped byte at the start, middle and end of every index file; restore refuses to run", async () => {
    for (const index of filesIn("index")) {
      for (const at of [() => 0, (b: Buffer) => b.length >> 1, (b: Buffer) => b.length - 1]) {
        const { check, restore } = await probe(tampered(index, at));
        expectNamed(check, index);
        expect(restore.code).not.toBe(0);
        expect(restore.stderr).toContain(path.basename(index));
      }
    }
  });

  it("detects a flipped byte in every snapshot file; restore refuses to run", async () => {
    for (const snapshot of filesIn("snapshots")) {
      const { check, restore } = await probe(tampered(snapshot, (b) => b.length >> 1));
      expectNamed(check, snapshot);
      expect(restore.code).not.toBe(0);
      expect(restore.stderr).toContain(path.basename(snapshot));
    }
  });

  it("detects a flipped byte anywhere in the key file and names it", async () => {
    const [key] = filesIn("keys");
    const text = readFileSync(path.join(pristine, key), "utf8");
    const inValue = (field: string) => () => text.indexOf(`"${field}": "`) + field.length + 6;
    // A byte of the creation time: the password still opens the key, so only check sees it.
    const harmless = await probe(tampered(key, inValue("created")));
    expectNamed(harmless.check, key);
    expect(harmless.restore.code).toBe(0);
    // The JSON itself, the salt, the wrapped master key: the key no longer opens.
    for (const at of [() => 0, inValue("salt"), inValue("data")]) {
      const { check, restore } = await probe(tampered(key, at));
      expectNamed(check, key);
      expect(check.stderr).toMatch(/key file .* is damaged/);
      expect(restore.code).toBe(1);
      expect(restore.stderr).toContain(path.basename(key));
    }
  });

  it("refuses to open a repository whose config has a flipped byte, saying the config is damaged", async () => {
    for (const at of [() => 0, (b: Buffer) => b.length >> 1, (b: Buffer) => b.length - 1]) {
      const { check, restore } = await probe(tampered("config", at));
      for (const r of [check, restore]) {
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/repository config at .* is damaged/);
      }
    }
  });
});
