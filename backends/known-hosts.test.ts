import { createHmac, generateKeyPairSync, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { fingerprint, keyType, knownHostName, verifyHostKey } from "./known-hosts.js";

/** An ssh-ed25519 public key blob, as a server sends it. */
function hostKey(): Buffer {
  const raw = generateKeyPairSync("ed25519").publicKey.export({ format: "der", type: "spki" }).subarray(-32);
  const type = Buffer.from("ssh-ed25519");
  const len = (b: Buffer) => Buffer.from([0, 0, 0, b.length]);
  return Buffer.concat([len(type), type, len(raw), raw]);
}

const line = (hosts: string, key: Buffer, marker = "") => `${marker}${marker ? " " : ""}${hosts} ssh-ed25519 ${key.toString("base64")} comment`;

const hashed = (name: string) => {
  const salt = randomBytes(20);
  return `|1|${salt.toString("base64")}|${createHmac("sha1", salt).update(name).digest("base64")}`;
};

describe("verifyHostKey", () => {
  const key = hostKey();
  const other = hostKey();

  it("accepts a key listed for the host, with the port OpenSSH's way", () => {
    expect(verifyHostKey(line("backup.example.org", key), "backup.example.org", 22, key)).toBe("known");
    expect(verifyHostKey(line("[backup.example.org]:2222", key), "backup.example.org", 2222, key)).toBe("known");
    expect(verifyHostKey(line("backup.example.org", key), "backup.example.org", 2222, key)).toBe("unknown");
    expect(verifyHostKey(`# comment\n\n${line("a.example.org,10.0.0.7", key)}`, "10.0.0.7", 22, key)).toBe("known");
  });

  it("matches hashed host names and wildcards, and honours negation", () => {
    expect(verifyHostKey(line(hashed("[127.0.0.1]:2200"), key), "127.0.0.1", 2200, key)).toBe("known");
    expect(verifyHostKey(line(hashed("127.0.0.1"), key), "127.0.0.2", 22, key)).toBe("unknown");
    expect(verifyHostKey(line("*.example.org", key), "nas.example.org", 22, key)).toBe("known");
    expect(verifyHostKey(line("*.example.org,!nas.example.org", key), "nas.example.org", 22, key)).toBe("unknown");
  });

  it("reports a different key for a known host as changed, and a revoked key as revoked", () => {
    expect(verifyHostKey(line("nas", other), "nas", 22, key)).toBe("changed");
    expect(verifyHostKey(`${line("nas", key)}\n${line("*", key, "@revoked")}`, "nas", 22, key)).toBe("revoked");
    expect(verifyHostKey("", "nas", 22, key)).toBe("unknown");
  });

  it("names keys the way ssh-keygen prints them", () => {
    expect(keyType(key)).toBe("ssh-ed25519");
    expect(fingerprint(key)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(knownHostName("h", 22)).toBe("h");
    expect(knownHostName("h", 23)).toBe("[h]:23");
  });
});
