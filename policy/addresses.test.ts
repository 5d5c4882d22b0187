import { describe, expect, it } from "vitest";
import { classifyAddress, ipBytes } from "./addresses.js";

describe("classifyAddress", () => {
  it("tells cloud metadata, link-local, loopback and private addresses from public ones", () => {
    const cases: [string, string][] = [
      ["169.254.169.254", "metadata"],
      ["fd00:ec2::254", "metadata"],
      ["[fd00:ec2::254]", "metadata"],
      ["100.100.100.200", "metadata"],
      ["168.63.129.16", "metadata"],
      ["169.254.1.1", "link-local"],
      ["fe80::1", "link-local"],
      ["fe80::1%eth0", "link-local"],
      ["127.0.0.1", "loopback"],
      ["127.8.9.10", "loopback"],
      ["::1", "loopback"],
      ["0.0.0.0", "unspecified"],
      ["::", "unspecified"],
      ["10.1.2.3", "private"],
      ["172.16.0.1", "private"],
      ["172.31.255.255", "private"],
      ["192.168.1.1", "private"],
      ["100.64.0.1", "private"],
      ["fc00::1", "private"],
      ["fd12:3456::1", "private"],
      ["224.0.0.1", "multicast"],
      ["255.255.255.255", "reserved"],
      ["8.8.8.8", "public"],
      ["172.32.0.1", "public"],
      ["2001:4860:4860::8888", "public"],
    ];
    for (const [address, cls] of cases) expect(classifyAddress(address), address).toBe(cls);
  });

  it("sees the IPv4 address inside IPv4-mapped and NAT64 IPv6 addresses", () => {
    expect(classifyAddress("::ffff:169.254.169.254")).toBe("metadata");
    expect(classifyAddress("::ffff:a9fe:a9fe")).toBe("metadata");
    expect(classifyAddress("::ffff:127.0.0.1")).toBe("loopback");
    expect(classifyAddress("64:ff9b::10.0.0.1")).toBe("private");
    expect(classifyAddress("::ffff:8.8.8.8")).toBe("public");
  });

  it("parses IPv6 forms to the same bytes and refuses what is no address", () => {
    expect(ipBytes("::ffff:1.2.3.4")).toEqual(ipBytes("0:0:0:0:0:ffff:102:304"));
    expect(ipBytes("1:2:3:4:5:6:1.2.3.4")).toEqual(ipBytes("1:2:3:4:5:6:102:304"));
    expect(ipBytes("fd00:ec2::254")).toEqual(Uint8Array.from([0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54]));
    expect(classifyAddress("localhost")).toBeUndefined();
    expect(classifyAddress("2130706433")).toBeUndefined();
  });
});
