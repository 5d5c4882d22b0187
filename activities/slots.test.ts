import { describe, expect, it } from "vitest";
import { maxJobsFromEnvironment } from "./slots.js";

describe("CAIRN_MAX_JOBS", () => {
  it("is a whole number of jobs, or absent for no global limit", () => {
    expect(maxJobsFromEnvironment({})).toBeUndefined();
    expect(maxJobsFromEnvironment({ CAIRN_MAX_JOBS: " " })).toBeUndefined();
    expect(maxJobsFromEnvironment({ CAIRN_MAX_JOBS: "3" })).toBe(3);
    for (const bad of ["0", "-1", "2.5", "many"]) expect(() => maxJobsFromEnvironment({ CAIRN_MAX_JOBS: bad })).toThrow(/give a whole number of 1 or more/);
  });
});
