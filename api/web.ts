import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { Hono } from "hono";
import { ApiError, renderProblem } from "./errors.js";

/**
 * What the browser may load and run on the dashboard's pages: only files of this
 * origin (no inline script or style, no eval, no other site), and nothing may frame it.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".map": "application/json; charset=utf-8",
};

/** Where `npm run build` writes the dashboard: dist/web of the checkout this module belongs to. */
export function defaultWebDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, "package.json")) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return path.join(dir, "dist", "web");
}

/**
 * The dashboard's static shell at / and /assets/<name>. Served without a token: it
 * holds no data, and every /v1 route it calls checks the token's permission. Only
 * the files found in the build at start are served, looked up by name in a table,
 * so no request path ever reaches the file system.
 */
/** The dashboard's static shell: public, read-only, not part of the API (so not in /openapi.json). */
export const WEB_SHELL_PATHS = ["/", "/assets/:name"] as const;

export function webRoutes(webDir: string) {
  const files = new Map<string, { body: Uint8Array; type: string }>();
  const index = path.join(webDir, "index.html");
  if (existsSync(index)) {
    files.set("/", { body: readFileSync(index), type: TYPES[".html"] });
    const assets = path.join(webDir, "assets");
    for (const name of existsSync(assets) ? readdirSync(assets) : []) {
      const type = TYPES[path.extname(name)];
      const file = path.join(assets, name);
      if (type && /^[\w.-]+$/.test(name) && statSync(file).isFile()) files.set(`/assets/${name}`, { body: readFileSync(file), type });
    }
  }

  const app = new Hono();
  app.on(["GET", "HEAD"], [...WEB_SHELL_PATHS], (c) => {
    const file = files.get(c.req.path);
    if (!file) {
      if (c.req.path === "/") {
        return renderProblem(new ApiError(503, "Dashboard not built", `the dashboard's files are not in ${webDir}; run npm run build (or npm start), then restart the API`), c);
      }
      return renderProblem(new ApiError(404, "Not found", `the dashboard has no file ${c.req.path}`), c);
    }
    return c.body(file.body as Uint8Array<ArrayBuffer>, 200, {
      "Content-Type": file.type,
      "Content-Security-Policy": DASHBOARD_CSP,
      "X-Content-Type-Options": "nosniff",
      "Referrer-Policy": "no-referrer",
      "X-Frame-Options": "DENY",
      "Cache-Control": "no-cache",
    });
  });
  return app;
}
