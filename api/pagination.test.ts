import { describe, expect, it } from "vitest";
import { SecretBox } from "../engine/secret-box.js";
import { ApiError } from "./errors.js";
import { PageTokens } from "./pagination.js";

const QUERY = "CairnKind IN ('backup', 'restore', 'verify', 'prune')";
const token = Buffer.from("temporal's own page token");

function refused(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    return err as ApiError;
  }
  throw new Error("the cursor was accepted");
}

describe("cursors around another system's page tokens", () => {
  it("give back the token to any API process with the same platform key, for the same query", () => {
    const key = SecretBox.generateKey();
    const cursor = new PageTokens(new SecretBox(key)).wrap(QUERY, token);
    expect(new PageTokens(new SecretBox(key)).unwrap(QUERY, cursor)).toEqual(token);
    // After a rotation of the platform key, cursors given out before still page on.
    expect(new PageTokens(new SecretBox([{ epoch: 1, key: SecretBox.generateKey() }, { epoch: 0, key }])).unwrap(QUERY, cursor)).toEqual(token);
  });

  it("refuse a forged token, a changed one, one for another query, and one of another deployment", () => {
    const tokens = new PageTokens(new SecretBox(SecretBox.generateKey()));
    const cursor = tokens.wrap(QUERY, token);
    expect(refused(() => tokens.unwrap(QUERY, Buffer.from("forged by hand, long enough").toString("base64url"))).status).toBe(400);
    const raw = Buffer.from(cursor, "base64url");
    raw[raw.length - 1] ^= 1;
    expect(refused(() => tokens.unwrap(QUERY, raw.toString("base64url"))).errors).toEqual([expect.objectContaining({ in: "query", path: "cursor" })]);
    expect(refused(() => tokens.unwrap(`${QUERY} AND CairnPlan = 'other'`, cursor)).status).toBe(400);
    expect(refused(() => tokens.unwrap(QUERY, "")).status).toBe(400);
    expect(refused(() => new PageTokens(new SecretBox(SecretBox.generateKey())).unwrap(QUERY, cursor)).status).toBe(400);
  });
});
