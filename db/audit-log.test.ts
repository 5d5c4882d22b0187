import { describe, expect, it } from "vitest";
import { canonicalJson, chainHash } from "./audit-log.js";

describe("audit chain", () => {
  it("writes the same event as the same bytes whatever the key order", () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { z: null, y: "x" }], c: true } })).toBe('{"a":{"c":true,"d":[2,{"y":"x","z":null}]},"b":1}');
    expect(canonicalJson({ a: undefined, b: new Date("2030-01-01T00:00:00.000Z") })).toBe('{"b":"2030-01-01T00:00:00.000Z"}');
  });

  it("chains each hash to the previous one", () => {
    const event = { seq: 1, time: new Date("2030-01-01T00:00:00Z"), actorId: "t1", actorName: "ci", role: "operator", action: "runPlan", resource: "plans/p1", outcome: "attempted", source: "10.0.0.1", requestId: "r1", details: { method: "POST" } };
    const first = chainHash(event, undefined);
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    expect(chainHash({ ...event, details: { method: "POST" } }, undefined)).toBe(first);
    expect(chainHash({ ...event, outcome: "succeeded" }, undefined)).not.toBe(first);
    const second = { ...event, seq: 2 };
    expect(chainHash(second, first)).not.toBe(chainHash(second, "00".repeat(32)));
  });
});
