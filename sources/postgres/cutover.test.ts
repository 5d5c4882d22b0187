import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { pgbouncerSettings, pointDatabase, switchPgbouncer, type PgbouncerSettings } from "./cutover.js";

const CONFIG = `[databases]
; the application's entry
app = host=10.0.0.5 port=5432 dbname=shop pool_size=20
other = host=10.0.0.9 dbname=other

[pgbouncer]
listen_addr = *
listen_port = 6433
pidfile = /run/pgbouncer/pgbouncer.pid
`;

describe("PgBouncer cut-over", () => {
  it("points only the named [databases] entry at the new host and port, keeping its other settings", () => {
    const { text, before } = pointDatabase(CONFIG, "app", "127.0.0.1", 5499);
    expect(before).toBe("host=10.0.0.5 port=5432 dbname=shop pool_size=20");
    expect(text).toContain("app = host=127.0.0.1 port=5499 dbname=shop pool_size=20\n");
    expect(text).toContain("other = host=10.0.0.9 dbname=other\n");
    expect(text).toContain("; the application's entry\n");
    // Run again (a retried step), it gives the same file.
    expect(pointDatabase(text, "app", "127.0.0.1", 5499).text).toBe(text);
  });

  it("adds host and port to an entry that had neither, and keeps quoted values", () => {
    const { text } = pointDatabase("[databases]\napp = dbname=shop password='a b'\n", "app", "db2", 6000);
    expect(text).toBe("[databases]\napp = host=db2 port=6000 dbname=shop password='a b'\n");
  });

  it("says which entries exist when the named one does not", () => {
    expect(() => pointDatabase(CONFIG, "missing", "h", 1)).toThrow(/no \[databases\] entry named "missing" \(it has app, other\)/);
    // A key of the same name in another section is not the entry.
    expect(() => pointDatabase("[pgbouncer]\napp = 1\n", "app", "h", 1)).toThrow(/add one such as app = host=/);
  });

  it("reads where PgBouncer takes clients and its pidfile", () => {
    expect(pgbouncerSettings(CONFIG)).toEqual({ host: "127.0.0.1", port: 6433, pidfile: "/run/pgbouncer/pgbouncer.pid" });
    expect(pgbouncerSettings("[pgbouncer]\nlisten_addr = 10.1.1.1, 127.0.0.1\n")).toEqual({ host: "10.1.1.1", port: 6432 });
  });

  describe("reloading by its pidfile", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "cairn-cutover-"));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const configFile = path.join(dir, "pgbouncer.ini");
    const pidfile = path.join(dir, "pgbouncer.pid");
    const config = CONFIG.replace("/run/pgbouncer/pgbouncer.pid", pidfile);
    const spec = { configFile, database: "app" };

    it("refuses a pidfile the caller's policy refuses, before the configuration changes", async () => {
      writeFileSync(configFile, config);
      writeFileSync(pidfile, `${process.pid}\n`);
      const refuse = async (settings: PgbouncerSettings, signal: boolean) => {
        if (signal && settings.pidfile) throw new Error(`refused: ${settings.pidfile}`);
      };
      await expect(switchPgbouncer(spec, "127.0.0.1", 5433, undefined, refuse)).rejects.toThrow(`refused: ${pidfile}`);
      expect(readFileSync(configFile, "utf8")).toBe(config);
    });

    it("shows the caller where it will sign in before anything changes, and changes nothing when that is refused", async () => {
      writeFileSync(configFile, config.replace("listen_addr = *", "listen_addr = 10.9.8.7"));
      const before = readFileSync(configFile, "utf8");
      const seen: [string, number, boolean][] = [];
      const refuseAddress = async (settings: PgbouncerSettings, signal: boolean) => {
        seen.push([settings.host, settings.port, signal]);
        throw new Error(`address refused: ${settings.host}`);
      };
      await expect(switchPgbouncer({ ...spec, adminUrl: "postgresql://admin@127.0.0.1:6432/pgbouncer" }, "127.0.0.1", 5433, undefined, refuseAddress)).rejects.toThrow("address refused: 10.9.8.7");
      expect(seen).toEqual([["10.9.8.7", 6433, false]]);
      expect(readFileSync(configFile, "utf8")).toBe(before);
    });

    it("signals only a pgbouncer: a pidfile naming another process is refused and that process is left alone", async () => {
      writeFileSync(configFile, config);
      const other = spawn("sleep", ["300"], { stdio: "ignore" });
      try {
        writeFileSync(pidfile, `${other.pid}\n`);
        const seen: string[] = [];
        const allow = async (settings: PgbouncerSettings, signal: boolean) => void (signal && settings.pidfile && seen.push(settings.pidfile));
        await expect(switchPgbouncer(spec, "127.0.0.1", 5433, undefined, allow)).rejects.toThrow(`names pid ${other.pid}, which is sleep, not pgbouncer; nothing was signalled`);
        expect(seen).toEqual([pidfile]);
        // SIGHUP would have ended sleep: it still runs.
        expect(other.exitCode).toBeNull();
        expect(other.signalCode).toBeNull();
        expect(() => process.kill(other.pid!, 0)).not.toThrow();
      } finally {
        other.kill("SIGKILL");
      }
    });
  });
});
