import { describe, expect, it } from "vitest";
import { redact } from "./audit.js";

describe("redact", () => {
  it("hides secret fields, keeps the names of credential variables, and leaves the rest", () => {
    const input = {
      name: "nas",
      url: "s3:https://minio:9000/b",
      password: "hunter2",
      credentials: { AWS_ACCESS_KEY_ID: "AKIA", AWS_SECRET_ACCESS_KEY: "shh" },
      nested: { token: "cairn_abc", sealedPassword: "c2VhbGVk", keepDaily: 7, privateKey: "-----BEGIN" },
      list: [{ secret: "x" }],
    };
    expect(redact(input)).toEqual({
      name: "nas",
      url: "s3:https://minio:9000/b",
      password: "[redacted]",
      credentials: { AWS_ACCESS_KEY_ID: "[redacted]", AWS_SECRET_ACCESS_KEY: "[redacted]" },
      nested: { token: "[redacted]", sealedPassword: "[redacted]", keepDaily: 7, privateKey: "[redacted]" },
      list: [{ secret: "[redacted]" }],
    });
  });

  it("cuts long strings and lists, and replaces NUL characters PostgreSQL would refuse", () => {
    const out = redact({ path: "a".repeat(2000), paths: Array.from({ length: 80 }, (_, i) => `/p${i}`), odd: "x\u0000y" }) as { path: string; paths: string[]; odd: string };
    expect(out.path).toMatch(/^a{512}… \(2000 characters\)$/);
    expect(out.paths).toHaveLength(51);
    expect(out.paths.at(-1)).toBe("… (80 items)");
    expect(out.odd).toBe("x\uFFFDy");
  });
});
