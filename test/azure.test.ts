import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AzureBackend } from "../backends/azure.js";
import { expectContainerCreatedOnDemand, runBackendConformance } from "../backends/conformance.js";
import { expectCliRoundTrip } from "./cli-roundtrip.js";
import { startAzurite, type TestServer } from "./servers.js";

let azurite: TestServer & { connectionString: string };
beforeAll(async () => {
  azurite = await startAzurite();
});
afterAll(async () => {
  await azurite?.stop();
});

const container = () => `cairn-${randomBytes(6).toString("hex")}`;

runBackendConformance("azure", async () => {
  const backend = new AzureBackend({ connectionString: azurite.connectionString, container: container(), prefix: "repo/one" });
  await backend.ensureContainer();
  return { backend, cleanup: async () => undefined };
});

describe("azure containers", () => {
  it("are created by ensureContainer, and a missing one reads as empty but refuses writes with what to do", async () => {
    const backend = new AzureBackend({ connectionString: azurite.connectionString, container: container() });
    await expectContainerCreatedOnDemand(backend, "container");
  });

  it("report a wrong account key as permanent, naming the variables to check", async () => {
    const wrongKey = azurite.connectionString.replace(/AccountKey=[^;]+/, `AccountKey=${randomBytes(64).toString("base64")}`);
    const err = await new AzureBackend({ connectionString: wrongKey, container: container() }).stat("config").catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: "permanent" });
    expect((err as Error).message).toContain("AZURE_STORAGE_CONNECTION_STRING");
  });

  it("carry cairn init (creating the container), backup, restore and check --read-data (CLI, azure: URL)", async () => {
    await expectCliRoundTrip(`azure:${container()}/backups/host1`, { AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString });
  });
});
