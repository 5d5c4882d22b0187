import { isIP } from "node:net";

/**
 * What an IP address reaches, as the execution policy sees it. `metadata`,
 * `link-local`, `unspecified`, `multicast` and `reserved` are never a backup
 * destination; `loopback` and `private` only when the policy allows them.
 */
export type AddressClass = "public" | "loopback" | "private" | "link-local" | "metadata" | "unspecified" | "multicast" | "reserved";

/** Addresses that hand out a machine's cloud credentials (AWS, GCP, Azure, Oracle, Alibaba, ECS tasks), whatever their range. */
const METADATA = ["169.254.169.254", "169.254.170.2", "169.254.170.23", "168.63.129.16", "100.100.100.200", "fd00:ec2::254", "fd00:ec2::23"];

interface Range {
  net: Uint8Array;
  bits: number;
  cls: AddressClass;
}

/** Checked in order: the first that contains the address decides. */
const RANGES: Range[] = [
  ["0.0.0.0/8", "unspecified"],
  ["127.0.0.0/8", "loopback"],
  ["169.254.0.0/16", "link-local"],
  ["10.0.0.0/8", "private"],
  ["172.16.0.0/12", "private"],
  ["192.168.0.0/16", "private"],
  ["100.64.0.0/10", "private"],
  ["224.0.0.0/4", "multicast"],
  ["240.0.0.0/4", "reserved"],
  ["::/128", "unspecified"],
  ["::1/128", "loopback"],
  ["fe80::/10", "link-local"],
  ["fc00::/7", "private"],
  ["ff00::/8", "multicast"],
].map(([cidr, cls]) => {
  const parsed = parseCidr(cidr)!;
  return { ...parsed, cls: cls as AddressClass };
});

/** IPv6 prefixes that carry an IPv4 address in their last 32 bits (mapped ::ffff:0:0/96, NAT64 64:ff9b::/96). */
const EMBEDDING = [parseCidr("::ffff:0:0/96")!, parseCidr("64:ff9b::/96")!];

/** The 4 or 16 bytes of an IP address, or undefined when `address` is not one. A zone (`%eth0`) is ignored. */
export function ipBytes(address: string): Uint8Array | undefined {
  const bare = address.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  const version = isIP(bare);
  if (version === 4) return Uint8Array.from(bare.split(".").map(Number));
  if (version !== 6) return undefined;
  const words = ipv6Words(bare.toLowerCase());
  const bytes = new Uint8Array(16);
  words.forEach((w, i) => {
    bytes[2 * i] = w >> 8;
    bytes[2 * i + 1] = w & 0xff;
  });
  return bytes;
}

/** The eight 16-bit groups of a valid IPv6 address, `::` expanded and a dotted IPv4 tail turned into two groups. */
function ipv6Words(text: string): number[] {
  let s = text;
  const tail: number[] = [];
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number);
    tail.push((a << 8) | b, (c << 8) | d);
    s = s.slice(0, -dotted[0].length);
    if (s.endsWith(":") && !s.endsWith("::")) s = s.slice(0, -1);
  }
  const hex = (part: string) => (part ? part.split(":").map((g) => parseInt(g, 16)) : []);
  const [head, rest] = s.split("::");
  if (rest === undefined) return [...hex(head), ...tail];
  const after = [...hex(rest), ...tail];
  return [...hex(head), ...new Array<number>(8 - hex(head).length - after.length).fill(0), ...after];
}

/** `10.0.0.0/8`, `fc00::/7`, or a single address (a full-length prefix); undefined when not a CIDR block. */
export function parseCidr(text: string): { net: Uint8Array; bits: number } | undefined {
  const [addr, len, extra] = text.split("/");
  if (extra !== undefined) return undefined;
  const net = ipBytes(addr);
  if (!net) return undefined;
  const bits = len === undefined ? net.length * 8 : /^\d+$/.test(len) ? Number(len) : NaN;
  if (!(bits >= 0 && bits <= net.length * 8)) return undefined;
  return { net, bits };
}

/** True when `bytes` lies in the block (both of the same IP version). */
export function inCidr(bytes: Uint8Array, block: { net: Uint8Array; bits: number }): boolean {
  if (bytes.length !== block.net.length) return false;
  for (let bit = 0; bit < block.bits; bit += 8) {
    const take = Math.min(8, block.bits - bit);
    const mask = (0xff << (8 - take)) & 0xff;
    if ((bytes[bit / 8] & mask) !== (block.net[bit / 8] & mask)) return false;
  }
  return true;
}

/** The IPv4 address an IPv6 address stands for (IPv4-mapped or NAT64), or the bytes as they are. */
export function unwrapIPv4(bytes: Uint8Array): Uint8Array {
  if (bytes.length === 16 && EMBEDDING.some((block) => inCidr(bytes, block))) return bytes.slice(12);
  return bytes;
}

const METADATA_BYTES = METADATA.map((a) => ipBytes(a)!);

/** What an IP address reaches; undefined when `address` is not an IP address. */
export function classifyAddress(address: string): AddressClass | undefined {
  const raw = ipBytes(address);
  if (!raw) return undefined;
  const bytes = unwrapIPv4(raw);
  if (METADATA_BYTES.some((m) => m.length === bytes.length && m.every((b, i) => b === bytes[i]))) return "metadata";
  return RANGES.find((r) => inCidr(bytes, r))?.cls ?? "public";
}
