/**
 * Include and exclude patterns, read as restic reads them, against absolute
 * "/"-separated paths (a snapshot's paths start at its root, "/srv/www/...").
 *
 * - A pattern that starts with "/" is anchored: its components match the path's
 *   from the root, "/srv/www/tmp/*" matches /srv/www/tmp/a.
 * - Any other pattern matches a run of components anywhere in the path: "*.tmp"
 *   matches every name ending in .tmp, "invoices/*.txt" the .txt files of every
 *   directory named invoices.
 * - A path matches when the pattern matches it or one of its parent directories,
 *   so "/srv/www/tmp" selects that directory and everything below it.
 * - Within a component, `*`, `?` and `[...]` match as in a shell and never cross a
 *   "/"; a component `**` stands for any number of directories.
 */
import * as path from "node:path";
import { CairnError } from "./errors.js";

interface Component {
  text: string;
  test: (name: string) => boolean;
}

interface Pattern {
  source: string;
  components: Component[];
  anchored: boolean;
  matched: boolean;
}

const ANY_NAME: Component = { text: "*", test: () => true };

const SYNTAX = /[\\^$.*+?()[\]{}|/]/g;
const escape = (c: string) => c.replace(SYNTAX, "\\$&");
const escapeInClass = (c: string) => c.replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&");

/** One path component's glob as a regular expression, as Go's filepath.Match reads it (no braces, no extglobs). */
function globRegExp(glob: string, source: string): RegExp {
  const bad = (why: string) => new CairnError(`the pattern ${JSON.stringify(source)} is not valid: ${why}; escape a literal character with a backslash`);
  const chars = [...glob];
  let re = "";
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i];
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "\\") {
      if (++i >= chars.length) throw bad("it ends with a backslash");
      re += escape(chars[i]);
    } else if (c === "[") {
      let j = i + 1;
      const negate = chars[j] === "!" || chars[j] === "^";
      if (negate) j++;
      let cls = "";
      while (j < chars.length && chars[j] !== "]") {
        const lo = chars[j] === "\\" ? chars[++j] : chars[j];
        if (lo === undefined) break;
        j++;
        if (chars[j] === "-" && chars[j + 1] !== undefined && chars[j + 1] !== "]") {
          const hi = chars[j + 1] === "\\" ? chars[j + 2] : chars[j + 1];
          if (hi === undefined || hi < lo) throw bad(`the range ${lo}-${hi ?? ""} is empty`);
          j += chars[j + 1] === "\\" ? 3 : 2;
          cls += `${escapeInClass(lo)}-${escapeInClass(hi)}`;
        } else cls += escapeInClass(lo);
      }
      if (j >= chars.length) throw bad("a [ is not closed");
      if (cls === "") throw bad("[] holds no character");
      re += negate ? `[^${cls}]` : `[${cls}]`;
      i = j;
    } else re += escape(c);
  }
  return new RegExp(`^${re}$`, "su");
}

function component(text: string, source: string): Component {
  if (!/[*?[\\]/.test(text)) return { text, test: (name) => name === text };
  const re = globRegExp(text, source);
  return { text, test: (name) => re.test(name) };
}

function compile(source: string): Pattern {
  if (source.includes("\0")) throw new CairnError(`the pattern ${JSON.stringify(source)} holds a NUL byte`);
  // "/srv/www/tmp/" and "/srv//www/./tmp" mean /srv/www/tmp.
  const clean = path.posix.normalize(source).replace(/(.)\/+$/, "$1");
  const anchored = clean.startsWith("/");
  const components = (anchored ? clean.slice(1) : clean).split("/").filter((c) => c !== "").map((c) => component(c, source));
  return { source, components, anchored, matched: false };
}

/** Whether components match a run of names: from the start when anchored, at any position otherwise; `**` expands to 0..n names. */
function matches(components: Component[], names: string[], anchored: boolean): boolean {
  const wild = components.findIndex((c) => c.text === "**");
  if (wild >= 0) {
    const before = components.slice(0, wild);
    const after = components.slice(wild + 1);
    for (let n = 0; before.length + n + after.length <= names.length; n++) {
      if (matches([...before, ...Array<Component>(n).fill(ANY_NAME), ...after], names, anchored)) return true;
    }
    return false;
  }
  if (components.length > names.length) return false;
  const lastStart = anchored ? 0 : names.length - components.length;
  for (let start = 0; start <= lastStart; start++) {
    if (components.every((c, i) => c.test(names[start + i]))) return true;
  }
  return false;
}

function namesOf(p: string): string[] {
  return p.split("/").filter((n) => n !== "");
}

/** A list of patterns; remembers which of them matched anything, so a restore can say which selected nothing. */
export class PathPatterns {
  private readonly patterns: Pattern[];

  constructor(sources: readonly string[] = []) {
    this.patterns = sources.filter((s) => s !== "").map(compile);
  }

  get empty(): boolean {
    return this.patterns.length === 0;
  }

  /** True when a pattern matches the absolute path `p` or one of its parent directories. */
  matches(p: string): boolean {
    const names = namesOf(p);
    let any = false;
    for (const pattern of this.patterns) {
      if (matches(pattern.components, names, pattern.anchored)) {
        pattern.matched = true;
        any = true;
      }
    }
    return any;
  }

  /** Patterns that have matched no path so far. */
  unmatched(): string[] {
    return this.patterns.filter((p) => !p.matched).map((p) => p.source);
  }
}
