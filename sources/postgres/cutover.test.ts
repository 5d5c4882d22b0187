import { describe, expect, it } from "vitest";
import { pgbouncerSettings, pointDatabase } from "./cutover.js";

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
});
