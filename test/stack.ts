/**
 * The end-to-end tests' stack: a namespace of this test file's own on the run's
 * Temporal dev server (test/global-setup.ts), with Cairn's search attributes, a
 * worker on it loading the prebuilt workflow bundle, and the API; one close().
 *
 * Namespaces keep files apart (task queues, workflow ids, schedules, visibility)
 * while they share one server, so the run starts one server instead of one per file.
 */
import { randomBytes } from "node:crypto";
import { Client, Connection } from "@temporalio/client";
import proto from "@temporalio/proto";
import { inject } from "vitest";
import { startApiServer, type ApiServer, type ApiServerOptions } from "../api/server.js";
import type { ExecutionPolicy } from "../policy/policy.js";
import { startDevServer, type DevServer } from "../scripts/temporal.js";
import { SEARCH_ATTRIBUTES } from "../workflows/messages.js";
import { createCairnWorker, type CairnWorker, type CairnWorkerOptions } from "../worker.js";
import { seedCatalog } from "./catalog-template.js";

export type StackWorkerOptions = Omit<CairnWorkerOptions, "address" | "connection" | "namespace" | "dataDir" | "policy">;
export type StackApiOptions = Omit<ApiServerOptions, "temporalAddress" | "namespace" | "dataDir" | "policy">;

export interface StackOptions {
  policy: ExecutionPolicy;
  /** The API's and the worker's data directory (catalog, platform secret key). */
  dataDir: string;
  /** Options for the API besides those above (port 0 unless given); false: no API. */
  api?: StackApiOptions | false;
  /** Options for the worker (1 codec thread and 2 activity slots unless given); false: no worker in this process. */
  worker?: StackWorkerOptions | false;
}

export interface Stack {
  /** host:port of the Temporal frontend. */
  address: string;
  namespace: string;
  /** TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE for a worker or API started as a process. */
  env: { TEMPORAL_ADDRESS: string; TEMPORAL_NAMESPACE: string };
  /** A Temporal client in the namespace. */
  client: Client;
  connection: Connection;
  /** The API; absent with `api: false`. */
  api: ApiServer;
  /** The running worker, if any. */
  worker?: CairnWorker;
  /** Starts a worker (stopping the running one first), with these options over the stack's. */
  startWorker(options?: StackWorkerOptions): Promise<CairnWorker>;
  /** Stops the running worker, if any, and waits until it has. */
  stopWorker(): Promise<void>;
  /** Starts the API (again: the running one is closed first, unless the test closed it) with these options over the stack's. */
  startApi(options?: StackApiOptions): Promise<ApiServer>;
  /** Stops the worker and the API, and the dev server when this file had to start its own. */
  close(): Promise<void>;
}

/** Keyword, the type Cairn's search attributes have (see scripts/temporal.ts). */
const KEYWORD = proto.temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;

export async function startStack(options: StackOptions): Promise<Stack> {
  const shared = inject("temporalAddress");
  // Without the run's server (no installed CLI), this file starts its own, which provisions it.
  const own: DevServer | undefined = shared ? undefined : await startDevServer({ headless: true, log: () => undefined });
  const address = shared || own!.address;
  const namespace = `cairn-test-${randomBytes(4).toString("hex")}`;
  let connection: Connection | undefined;
  let api: ApiServer | undefined;
  let worker: { cairn: CairnWorker; running: Promise<void> } | undefined;
  const workerDefaults: StackWorkerOptions = { threads: 1, maxConcurrentActivityTaskExecutions: 2, ...(options.worker || {}) };
  const apiDefaults: StackApiOptions = { port: 0, ...(options.api || {}) };

  const stopWorker = async () => {
    const stopping = worker;
    worker = undefined;
    if (!stopping) return;
    stopping.cairn.shutdown();
    await stopping.running;
  };
  const startWorker = async (more: StackWorkerOptions = {}) => {
    await stopWorker();
    const cairn = await createCairnWorker({ ...workerDefaults, ...more, address, namespace, dataDir: options.dataDir, policy: options.policy });
    worker = { cairn, running: cairn.run() };
    return cairn;
  };
  const startApi = async (more: StackApiOptions = {}) => {
    await api?.close();
    if (!(more.databaseUrl ?? apiDefaults.databaseUrl ?? process.env.DATABASE_URL)) await seedCatalog(options.dataDir);
    api = await startApiServer({ ...apiDefaults, ...more, temporalAddress: address, namespace, dataDir: options.dataDir, policy: options.policy });
    // Closed once: by the test that stops it, or at close().
    const closeOnce = api.close.bind(api);
    let closing: Promise<void> | undefined;
    api.close = () => (closing ??= closeOnce());
    return api;
  };
  const close = async () => {
    await api?.close();
    await stopWorker();
    await connection?.close();
    await own?.stop();
  };

  try {
    connection = await connectWhenUp(address);
    await registerNamespace(connection, namespace);
    if (options.api !== false) await startApi();
    if (options.worker !== false) await startWorker();
  } catch (err) {
    await close();
    throw err;
  }
  return {
    address,
    namespace,
    env: { TEMPORAL_ADDRESS: address, TEMPORAL_NAMESPACE: namespace },
    client: new Client({ connection, namespace }),
    connection,
    get api() {
      return api!;
    },
    get worker() {
      return worker?.cairn;
    },
    startWorker,
    stopWorker,
    startApi,
    close,
  };
}

/** Connects once the shared server answers: it may still be starting when the first file gets here. */
async function connectWhenUp(address: string, timeoutMs = 120_000): Promise<Connection> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await Connection.connect({ address, connectTimeout: 2000 });
    } catch (err) {
      if (Date.now() > deadline) {
        throw new Error(`the run's Temporal dev server at ${address} (test/global-setup.ts) does not answer: ${(err as Error).message}; its start error, if any, is in the run's output`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** Registers the namespace with Cairn's search attributes and waits until both are visible, as startDevServer does for its own. */
async function registerNamespace(connection: Connection, namespace: string, timeoutMs = 60_000): Promise<void> {
  // A day is plenty: the server lives for one run.
  await connection.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: proto.google.protobuf.Duration.fromObject({ seconds: 24 * 3600 }) });
  const deadline = Date.now() + timeoutMs;
  let added = false;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (!added) {
        await connection.operatorService.addSearchAttributes({ namespace, searchAttributes: Object.fromEntries(Object.values(SEARCH_ATTRIBUTES).map((n) => [n, KEYWORD])) });
        added = true;
      }
      const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
      const missing = Object.values(SEARCH_ATTRIBUTES).filter((n) => !customAttributes?.[n]);
      if (missing.length === 0) return;
      last = new Error(`search attributes ${missing.join(", ")} are not registered yet`);
    } catch (err) {
      // A namespace just registered is unknown to the frontend until its namespace cache refreshes.
      last = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`namespace ${namespace} was not ready within ${timeoutMs / 1000}s: ${(last as Error)?.message}`);
}
