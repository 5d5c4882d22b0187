import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { z } from "zod";

/** One problem with one input field: where it is and what to do about it. */
export interface FieldError {
  /** "body", "query" or "path". */
  in: string;
  /** Dotted path to the field, such as "schedule.cron" ("" for the whole input). */
  path: string;
  message: string;
}

/**
 * The one error type routes throw: an HTTP status and a sentence that tells the
 * caller what to do next. app.ts renders it as application/problem+json (RFC 9457).
 */
export class ApiError extends Error {
  /** Response headers that go with the problem, such as Retry-After on a 429. */
  headers?: Record<string, string>;

  constructor(
    readonly status: ContentfulStatusCode,
    readonly title: string,
    detail: string,
    readonly errors?: FieldError[],
  ) {
    super(detail);
    this.name = "ApiError";
  }

  static notFound(what: string, id: string, hint: string): ApiError {
    return new ApiError(404, `${what} not found`, `there is no ${what} with id ${id}; ${hint}`);
  }
}

const TARGETS: Record<string, string> = { json: "body", query: "query", param: "path", header: "header" };

/** Turns zod issues into field errors; an unknown key becomes one error per key, so the client sees which to drop. */
export function fieldErrors(target: string, error: z.ZodError): FieldError[] {
  const where = TARGETS[target] ?? target;
  return error.issues.flatMap((issue) => {
    const base = issue.path.map(String);
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => ({ in: where, path: [...base, key].join("."), message: "unknown field; remove it (see /openapi.json for the accepted fields)" }));
    }
    if (issue.code === "invalid_type" && /received undefined$/.test(issue.message)) {
      return [{ in: where, path: base.join("."), message: `this field is required (${issue.expected})` }];
    }
    return [{ in: where, path: base.join("."), message: issue.message }];
  });
}

/**
 * The validation hook every router uses: a failed zod check becomes a 400
 * problem listing each field, instead of zod-openapi's default JSON dump.
 */
export function validationHook(result: { success: boolean; error?: z.ZodError; data?: unknown; target: string }): void {
  if (result.success) {
    const nul = nulAt(result.data, []);
    if (nul) {
      const where = TARGETS[result.target] ?? result.target;
      throw new ApiError(400, "Invalid request", `the request ${where} is not valid: ${nul.join(".") || where} holds a NUL character, which no name, path or id may contain; remove it`, [
        { in: where, path: nul.join("."), message: "contains a NUL character" },
      ]);
    }
    return;
  }
  if (!result.error) return;
  const errors = fieldErrors(result.target, result.error);
  const summary = errors.map((e) => (e.path ? `${e.path}: ${e.message}` : e.message)).join("; ");
  throw new ApiError(400, "Invalid request", `the request ${TARGETS[result.target] ?? result.target} is not valid: ${summary}`, errors);
}

/** The path of the first string (or key) holding U+0000, which PostgreSQL's text cannot store; undefined when there is none. */
function nulAt(value: unknown, at: string[]): string[] | undefined {
  if (typeof value === "string") return value.includes("\u0000") ? at : undefined;
  if (!value || typeof value !== "object") return undefined;
  for (const [k, v] of Object.entries(value)) {
    if (k.includes("\u0000")) return [...at, k];
    const found = nulAt(v, [...at, k]);
    if (found) return found;
  }
  return undefined;
}

/** Renders any error as application/problem+json; only unexpected ones become a 500, and those are logged. */
export function renderProblem(err: Error, c: Context): Response {
  let status: ContentfulStatusCode = 500;
  let title = "Internal error";
  let detail = "the server failed unexpectedly; the error is in its log. Retry, and report it if it happens again";
  let errors: FieldError[] | undefined;
  const headers: Record<string, string> = { "Content-Type": "application/problem+json" };
  if (err instanceof ApiError) {
    ({ status, title, errors } = err);
    detail = err.message;
    Object.assign(headers, err.headers);
  } else if (err instanceof HTTPException) {
    status = err.status as ContentfulStatusCode;
    title = err.status === 415 ? "Unsupported media type" : "Bad request";
    detail =
      err.status === 415
        ? "send the body as JSON with the header Content-Type: application/json"
        : `${err.message}; send a JSON object as the body with Content-Type: application/json`;
  } else {
    console.error(`${c.req.method} ${c.req.path} failed:`, err);
  }
  const body = { type: "about:blank", title, status, detail, ...(errors ? { errors } : {}) };
  if (status === 401) headers["WWW-Authenticate"] = "Bearer";
  return c.body(JSON.stringify(body), status, headers);
}

/** True when the database refused a row for a duplicate unique value (two requests racing for one name). */
export function isUniqueViolation(err: unknown): boolean {
  for (let e = err as { code?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.code === "23505") return true;
  }
  return false;
}
