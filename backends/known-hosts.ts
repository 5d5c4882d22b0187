import { createHash, createHmac } from "node:crypto";

/** One usable line of a known_hosts file. */
interface KnownHostLine {
  marker?: "@revoked" | "@cert-authority";
  patterns: string[];
  keyType: string;
  key: Buffer;
}

/** How a host key compares with what the known_hosts file says about that host. */
export type HostKeyVerdict = "known" | "unknown" | "changed" | "revoked";

/** The name OpenSSH records for a host: `host` on port 22, `[host]:port` otherwise. */
export function knownHostName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** `SHA256:…` as ssh-keygen -l prints it. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash("sha256").update(key).digest("base64").replace(/=+$/, "")}`;
}

/** The algorithm name at the start of an SSH public key blob (`ssh-ed25519`, …). */
export function keyType(key: Buffer): string {
  if (key.length < 4) return "unknown";
  const n = key.readUInt32BE(0);
  return key.subarray(4, 4 + n).toString("latin1");
}

function parse(text: string): KnownHostLine[] {
  const lines: KnownHostLine[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const fields = raw.trim().split(/\s+/);
    if (!fields[0] || fields[0].startsWith("#")) continue;
    const marker = fields[0] === "@revoked" || fields[0] === "@cert-authority" ? (fields.shift() as KnownHostLine["marker"]) : undefined;
    if (fields.length < 3) continue;
    lines.push({ marker, patterns: fields[0].split(","), keyType: fields[1], key: Buffer.from(fields[2], "base64") });
  }
  return lines;
}

/** Does one host pattern (plain, hashed `|1|salt|hash`, or with * and ? wildcards) name `name`? */
function patternMatches(pattern: string, name: string): boolean {
  if (pattern.startsWith("|1|")) {
    const [, , salt, hash] = pattern.split("|");
    if (!salt || !hash) return false;
    return createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest("base64") === hash;
  }
  const regex = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`, "i");
  return regex.test(name);
}

function lineMatches(line: KnownHostLine, name: string): boolean {
  let matched = false;
  for (const p of line.patterns) {
    if (p.startsWith("!")) {
      if (patternMatches(p.slice(1), name)) return false;
    } else if (patternMatches(p, name)) matched = true;
  }
  return matched;
}

/**
 * Checks a server's host key against the text of a known_hosts file, the way
 * OpenSSH's StrictHostKeyChecking=yes does: only a key listed for that host (and
 * port) is accepted; certificate authorities are not supported.
 */
export function verifyHostKey(knownHosts: string, host: string, port: number, key: Buffer): HostKeyVerdict {
  const name = knownHostName(host, port);
  const lines = parse(knownHosts).filter((l) => lineMatches(l, name));
  if (lines.some((l) => l.marker === "@revoked" && l.key.equals(key))) return "revoked";
  const plain = lines.filter((l) => l.marker === undefined);
  if (plain.some((l) => l.key.equals(key))) return "known";
  return plain.length ? "changed" : "unknown";
}
