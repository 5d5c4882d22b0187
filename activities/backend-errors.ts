import { ApplicationFailure } from "@temporalio/common";
import { BackendError } from "../backends/backend.js";
import { parseRepositoryUrl } from "../backends/url.js";

const KIND_NAMES: Record<string, string> = { local: "local", s3: "S3", sftp: "SFTP", azure: "Azure", gs: "Google Cloud Storage" };

/**
 * What an activity's failure says about a destination. A backend's error that it
 * did not word itself (no reason) can carry a destination's raw answer or an
 * internal host:port, and a failure's message ends up in the workflow history and
 * in the API's job view; so it becomes a sentence of ours naming the kind of
 * destination, and the original goes to this worker's log. Everything else (our
 * refusals, a wrong password, messages backends wrote themselves) is kept.
 */
export function inOwnWords(activity: string, input: unknown, err: unknown): unknown {
  if (!(err instanceof BackendError) || err.reason) return err;
  console.warn(`cairn worker: ${activity}: ${err.message}`, err.cause ?? "");
  const kinds = new Set(urlsIn(input, 3).map(kindOf));
  const which = kinds.size === 1 ? `the ${[...kinds][0]} destination` : "a storage destination";
  const what =
    err.kind === "transient" ? "could not be reached or failed (it may be down, or unreachable from the workers); retry later, and check its location" :
    err.kind === "not-found" ? "does not hold something the repository needs; check that the location and its credentials are the repository's" :
    "refused the request; check the repository's location and credentials";
  return ApplicationFailure.create({ message: `${which} ${what}; see the worker's log for the details`, type: "BackendError", nonRetryable: err.kind === "permanent" });
}

function kindOf(url: string): string {
  try {
    return KIND_NAMES[parseRepositoryUrl(url).type] ?? "storage";
  } catch {
    return "storage";
  }
}

/** The repository URLs an activity's input names (its targets' `url`s). */
function urlsIn(value: unknown, depth: number): string[] {
  if (!value || typeof value !== "object" || depth < 0) return [];
  const { url, sealedPassword } = value as { url?: unknown; sealedPassword?: unknown };
  const own = typeof url === "string" && typeof sealedPassword === "string" ? [url] : [];
  return [...own, ...Object.values(value).flatMap((v) => urlsIn(v, depth - 1))];
}

/** Every activity of `activities`, its failures passed through inOwnWords. */
export function speakingForBackends<T extends Record<string, (...args: never[]) => Promise<unknown>>>(activities: T): T {
  const out: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(activities)) {
    out[name] = async (...args: never[]) => {
      try {
        return await fn(...args);
      } catch (err) {
        throw inOwnWords(name, args[0], err);
      }
    };
  }
  return out as T;
}
