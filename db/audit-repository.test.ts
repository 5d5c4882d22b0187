import { describe, expect, it } from "vitest";
import { checkpointKey, checkpointLockFrom } from "./audit-repository.js";

describe("checkpoint repository settings", () => {
  it("locks checkpoints for a year in COMPLIANCE mode unless told otherwise, 0 for none, and refuses nonsense", () => {
    expect(checkpointLockFrom({})).toEqual({ mode: "COMPLIANCE", days: 365 });
    expect(checkpointLockFrom({ CAIRN_AUDIT_OBJECT_LOCK_DAYS: "30", CAIRN_AUDIT_OBJECT_LOCK_MODE: "governance" })).toEqual({ mode: "GOVERNANCE", days: 30 });
    expect(checkpointLockFrom({ CAIRN_AUDIT_OBJECT_LOCK_DAYS: "0" })).toBeUndefined();
    expect(() => checkpointLockFrom({ CAIRN_AUDIT_OBJECT_LOCK_DAYS: "-1" })).toThrow(/whole number of days from 0/);
    expect(() => checkpointLockFrom({ CAIRN_AUDIT_OBJECT_LOCK_MODE: "legal-hold" })).toThrow(/governance or compliance/);
  });

  it("names checkpoints so they list in sequence order", () => {
    expect(checkpointKey(42)).toBe("audit-checkpoints/000000000042.json");
  });
});
