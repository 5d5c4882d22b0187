/**
 * `npm run build` (after tsc): bundles the dashboard (web/src/main.ts, plain
 * TypeScript) with esbuild into dist/web: index.html and assets/ with app.js,
 * app.css and icon.svg. Everything the page loads comes from the API's origin
 * (no CDN, no external font), so it works offline.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

/** The checkout this script belongs to (from src/ or dist/). */
function checkoutRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, "package.json")) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
}

/** Writes the built dashboard into `outDir` (replacing what it held) and returns it. */
export async function buildWeb(outDir = path.join(checkoutRoot(), "dist", "web")): Promise<string> {
  const web = path.join(checkoutRoot(), "web");
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(path.join(outDir, "assets"), { recursive: true });
  await build({
    entryPoints: [path.join(web, "src", "main.ts")],
    outfile: path.join(outDir, "assets", "app.js"),
    bundle: true,
    format: "esm",
    target: "es2022",
    minify: true,
    sourcemap: "linked",
    logLevel: "warning",
  });
  copyFileSync(path.join(web, "index.html"), path.join(outDir, "index.html"));
  copyFileSync(path.join(web, "app.css"), path.join(outDir, "assets", "app.css"));
  copyFileSync(path.join(web, "icon.svg"), path.join(outDir, "assets", "icon.svg"));
  return outDir;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // npm run build first refreshes the dashboard's API types from the API just compiled, so a route's
  // schema changed anywhere reaches web/src/api-types.ts (commit it; api/web.test.ts checks it is current).
  import("./web-types.js")
    .then(async ({ apiDocument, webTypes, WEB_TYPES_FILE }) => {
      const text = webTypes(await apiDocument());
      if (!existsSync(WEB_TYPES_FILE) || readFileSync(WEB_TYPES_FILE, "utf8") !== text) {
        writeFileSync(WEB_TYPES_FILE, text);
        process.stdout.write(`dashboard API types refreshed: ${WEB_TYPES_FILE}\n`);
      }
    })
    .then(() => buildWeb())
    .then(
      (dir) => process.stdout.write(`dashboard built into ${dir}\n`),
      (err) => {
        process.stderr.write(`build-web: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
}
