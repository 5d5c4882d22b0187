import { runBackendConformance } from "./conformance.js";
import { MemBackend } from "./mem.js";

runBackendConformance("mem", async () => ({ backend: new MemBackend(), cleanup: async () => undefined }), { inMemory: true });
