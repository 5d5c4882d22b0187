import { OpenAPIHono, z } from "@hono/zod-openapi";
import { validationHook } from "./errors.js";

/** A router whose validation failures become problem+json with field errors. */
export function router(): OpenAPIHono {
  return new OpenAPIHono({ defaultHook: (result) => validationHook(result) });
}

export const Problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().openapi({ description: "What went wrong and what to do next." }),
    errors: z
      .array(z.object({ in: z.string(), path: z.string(), message: z.string() }))
      .optional()
      .openapi({ description: "One entry per invalid field (validation failures only)." }),
  })
  .openapi("Problem");

const PROBLEM_TEXT: Record<number, string> = {
  400: "The input is not valid; `errors` names each field.",
  401: "No bearer token, or one the server does not know.",
  404: "No such resource.",
  409: "The request conflicts with the current state.",
  415: "The body is not JSON.",
  422: "The input is well-formed but cannot be used (for example a wrong repository password).",
  503: "Temporal or the catalog is not reachable.",
};

/** The error responses of a route, documented as problem+json. */
export function problems(...statuses: (keyof typeof PROBLEM_TEXT)[]) {
  return Object.fromEntries(
    [401, 503, ...statuses].map((s) => [s, { description: PROBLEM_TEXT[s], content: { "application/problem+json": { schema: Problem } } }]),
  ) as Record<number, { description: string; content: { "application/problem+json": { schema: typeof Problem } } }>;
}

/** A JSON response body in a route definition. */
export function json<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } };
}

/** A required JSON request body. */
export function jsonBody<T extends z.ZodType>(schema: T) {
  return { required: true, content: { "application/json": { schema } } };
}

/** Path parameter `id`. */
export const IdParam = z.object({ id: z.string().min(1).max(200).openapi({ param: { name: "id", in: "path" }, example: "3f9a1c2b7d4e5f60" }) });

export const BEARER = [{ bearer: [] }];
