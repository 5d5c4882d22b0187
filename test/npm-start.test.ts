import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createConnection } from "node:net";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { ROOT, tempDir } from "./helpers.js";
import { freePort } from "./servers.js";

/** Every live process below `pid` (children, their children...), from /proc. */
function descendants(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The state line: "pid (comm) S ppid ..."; comm may hold spaces and parentheses.
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] !== "Z") parentOf.set(Number(entry), Number(fields[1]));
    } catch {
      // gone meanwhile
    }
  }
  const found: number[] = [];
  const walk = (p: number) => {
    for (const [child, parent] of parentOf) if (parent === p) found.push(child), walk(child);
  };
  walk(pid);
  return found;
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });
}

/** Waits for `check`; `what` is read when giving up, so it can describe the state then. */
async function until(what: () => string, check: () => boolean | Promise<boolean>, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting: ${what()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * `npm start` as a supervisor runs it (systemd, a container runtime, a CI job): one signal to the
 * npm process must stop the whole stack, leaving no dev server, worker or API holding its port.
 * `npm run serve` is `npm start` without the build step, so the same script line is exercised
 * without compiling again here.
 */
describe("npm start under a supervisor", () => {
  const started: ChildProcess[] = [];
  const dirs: ReturnType<typeof tempDir>[] = [];
  const seen: number[] = []; // reparented once npm is gone, so kept by pid

  afterEach(() => {
    for (const child of started) seen.push(child.pid!, ...descendants(child.pid!));
    for (const pid of seen) if (alive(pid)) process.kill(pid, "SIGKILL");
  });
  afterAll(() => {
    for (const dir of dirs) dir.cleanup();
  });

  async function serve(): Promise<{ npm: ChildProcess; pids: number[]; ports: number[]; output: () => string }> {
    const [temporal, ui, api] = [await freePort(), await freePort(), await freePort()];
    const data = tempDir("cairn-npm-start-");
    dirs.push(data);
    const npm = spawn("npm", ["run", "serve"], {
      cwd: ROOT,
      env: {
        ...process.env,
        CAIRN_DATA_DIR: data.dir,
        CAIRN_TEMPORAL_PORT: String(temporal),
        CAIRN_TEMPORAL_UI_PORT: String(ui),
        CAIRN_API_PORT: String(api),
        CAIRN_API_TOKEN: "npm-start-test-token-0123456789abcdef",
        DATABASE_URL: "",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    started.push(npm);
    let output = "";
    npm.stdout!.on("data", (d: Buffer) => (output += d.toString()));
    npm.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    await until(() => `the API answering on :${api} (output so far: ${output.slice(-2000)})`, async () => {
      if (npm.exitCode !== null) throw new Error(`npm run serve exited (${npm.exitCode}): ${output.slice(-2000)}`);
      return listening(api);
    });
    // The dev server, the worker and the API's process are all below npm by now.
    await until(() => "the worker process to start", () => descendants(npm.pid!).length >= 3);
    const pids = descendants(npm.pid!);
    seen.push(...pids);
    return { npm, pids, ports: [temporal, api], output: () => output };
  }

  it("stops the dev server, the worker and the API on one SIGTERM to npm", async () => {
    const { npm, pids, ports, output } = await serve();
    const exited = new Promise<number | null>((resolve) => npm.once("exit", (code) => resolve(code)));
    npm.kill("SIGTERM");
    await until(() => `every process npm started to exit (left: ${pids.filter(alive).join(", ")}; output: ${output().slice(-1500)})`, () => pids.every((pid) => !alive(pid)));
    await exited;
    for (const port of ports) expect(await listening(port), `port ${port} still answers`).toBe(false);
    expect(output()).toContain("stopping");
  }, 420_000);

  it("stops them too when npm itself is killed and cannot pass a signal on", async () => {
    const { npm, pids, ports, output } = await serve();
    npm.kill("SIGKILL");
    await until(() => `every orphaned process to exit (left: ${pids.filter(alive).join(", ")}; output: ${output().slice(-1500)})`, () => pids.every((pid) => !alive(pid)));
    for (const port of ports) expect(await listening(port), `port ${port} still answers`).toBe(false);
  }, 420_000);

  it("npm start runs the same line after its build", () => {
    const scripts = JSON.parse(readFileSync(`${ROOT}/package.json`, "utf8")).scripts as Record<string, string>;
    const serveLine = scripts.serve.replace("bash scripts/node.sh --check && ", "");
    expect(scripts.start.endsWith(`npm run build && ${serveLine}`)).toBe(true);
  });
});
