import * as path from "node:path";
import { parseRepositoryUrl } from "../backends/url.js";

/**
 * The canonical form of a repository URL, or undefined when it names no
 * destination: an absolute local path (or local:/path), or an s3:, sftp:,
 * azure: or gs: location. The API and the workers must agree on it.
 */
export function repositoryUrl(url: string): string | undefined {
  let dest;
  try {
    dest = parseRepositoryUrl(url);
  } catch {
    return undefined;
  }
  if (dest.type !== "local") return url;
  return path.isAbsolute(dest.path) ? path.resolve(dest.path) : undefined; // resolve drops a trailing slash, so one place has one name
}
