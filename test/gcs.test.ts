import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { expectContainerCreatedOnDemand, runBackendConformance } from "../backends/conformance.js";
import { GcsBackend, type GcsOptions } from "../backends/gcs.js";
import { expectCliRoundTrip } from "./cli-roundtrip.js";
import { startFakeGcs } from "./servers.js";

const gcs = await startFakeGcs();

describe("gcs against fake-gcs-server", () => {
  afterAll(async () => {
    await gcs.stop();
  });
  const options = (overrides: Partial<GcsOptions> = {}): GcsOptions => ({
    apiEndpoint: gcs.endpoint,
    projectId: "cairn-test",
    bucket: `cairn-${randomBytes(6).toString("hex")}`,
    prefix: "repo/one",
    ...overrides,
  });

  runBackendConformance("gcs", async () => {
    const backend = new GcsBackend(options());
    await backend.ensureContainer();
    return { backend, cleanup: async () => undefined };
  });

  it("creates a missing bucket on ensureContainer; before that it reads as empty and refuses writes with what to do", async () => {
    const backend = new GcsBackend(options({ prefix: "" }));
    await expectContainerCreatedOnDemand(backend, "bucket");
  });

  it("carries cairn init (creating the bucket), backup, restore and check --read-data (CLI, gs: URL)", async () => {
    await expectCliRoundTrip(`gs:cairn-${randomBytes(6).toString("hex")}/backups/host1`, { CAIRN_GCS_ENDPOINT: gcs.endpoint, GOOGLE_CLOUD_PROJECT: "cairn-test" });
  });
});
