import { describe, expect, it } from "vitest";
import { PathPatterns } from "./pathmatch.js";

const matching = (patterns: string[], paths: string[]) => {
  const p = new PathPatterns(patterns);
  return paths.filter((x) => p.matches(x));
};

const tree = [
  "/srv",
  "/srv/www",
  "/srv/www/index.html",
  "/srv/www/invoices",
  "/srv/www/invoices/inv_1.txt",
  "/srv/www/invoices/inv_10.txt",
  "/srv/www/invoices/inv_2.txt",
  "/srv/www/tmp",
  "/srv/www/tmp/cache.tmp",
  "/srv/www/tmp/.hidden",
  "/srv/old/invoices/inv_1.txt",
];

describe("PathPatterns", () => {
  it("anchors a pattern with a slash at the root and matches it component by component", () => {
    expect(matching(["/srv/www/invoices/inv_1*.txt"], tree)).toEqual(["/srv/www/invoices/inv_1.txt", "/srv/www/invoices/inv_10.txt"]);
    expect(matching(["/srv/www/tmp/*"], tree)).toEqual(["/srv/www/tmp/cache.tmp", "/srv/www/tmp/.hidden"]);
    expect(matching(["/www/tmp/*"], tree)).toEqual([]);
  });

  it("matches a pattern without a slash against every name, directories included", () => {
    expect(matching(["*.txt"], tree)).toEqual(tree.filter((p) => p.endsWith(".txt")));
    expect(matching(["inv_1.txt"], tree)).toEqual(["/srv/www/invoices/inv_1.txt", "/srv/old/invoices/inv_1.txt"]);
  });

  it("matches a relative pattern with a slash at any depth", () => {
    expect(matching(["invoices/inv_1.txt"], tree)).toEqual(["/srv/www/invoices/inv_1.txt", "/srv/old/invoices/inv_1.txt"]);
    expect(matching(["www/invoices"], tree)).toEqual(tree.filter((p) => p.startsWith("/srv/www/invoices")));
  });

  it("selects what lies below a matching directory", () => {
    expect(matching(["/srv/www/tmp"], tree)).toEqual(["/srv/www/tmp", "/srv/www/tmp/cache.tmp", "/srv/www/tmp/.hidden"]);
    expect(matching(["/srv/www/tmp/"], tree)).toEqual(["/srv/www/tmp", "/srv/www/tmp/cache.tmp", "/srv/www/tmp/.hidden"]);
    expect(matching(["tmp"], ["/srv/www/tmp/cache.tmp", "/srv/www/tmpfile"])).toEqual(["/srv/www/tmp/cache.tmp"]);
  });

  it("lets ** stand for any number of directories, and * never cross a slash", () => {
    expect(matching(["/srv/**/inv_1.txt"], tree)).toEqual(["/srv/www/invoices/inv_1.txt", "/srv/old/invoices/inv_1.txt"]);
    expect(matching(["/srv/**/index.html"], tree)).toEqual(["/srv/www/index.html"]);
    expect(matching(["/srv/*/inv_1.txt"], tree)).toEqual([]);
    expect(matching(["/srv/*/invoices/inv_?.txt"], tree)).toEqual(["/srv/www/invoices/inv_1.txt", "/srv/www/invoices/inv_2.txt", "/srv/old/invoices/inv_1.txt"]);
  });

  it("reads [!...], ! and braces as restic does: a class negation, and literal characters", () => {
    expect(matching(["/srv/www/invoices/inv_[!1].txt"], tree)).toEqual(["/srv/www/invoices/inv_2.txt"]);
    expect(matching(["!inv_1.txt"], ["/a/!inv_1.txt", "/a/inv_2.txt"])).toEqual(["/a/!inv_1.txt"]);
    expect(matching(["{a,b}.txt"], ["/x/{a,b}.txt", "/x/a.txt"])).toEqual(["/x/{a,b}.txt"]);
  });

  it("takes a backslash-escaped character literally, and ranges in classes", () => {
    expect(matching(["\\*.txt"], ["/a/*.txt", "/a/b.txt"])).toEqual(["/a/*.txt"]);
    expect(matching(["inv_[0-1]*.txt"], tree)).toEqual(["/srv/www/invoices/inv_1.txt", "/srv/www/invoices/inv_10.txt", "/srv/old/invoices/inv_1.txt"]);
    expect(matching(["caf?.txt"], ["/a/café.txt", "/a/caf.txt"])).toEqual(["/a/café.txt"]);
  });

  it("refuses a pattern it cannot read, saying what is wrong", () => {
    expect(() => new PathPatterns(["/srv/inv_[12.txt"])).toThrow(/not valid: a \[ is not closed/);
    expect(() => new PathPatterns(["inv_[z-a].txt"])).toThrow(/the range z-a is empty/);
    expect(() => new PathPatterns(["trailing\\"])).toThrow(/ends with a backslash/);
  });

  it("says which patterns matched nothing", () => {
    const p = new PathPatterns(["/srv/www/invoices/*", "/srv/nope/*", "*.md"]);
    for (const x of tree) p.matches(x);
    expect(p.unmatched()).toEqual(["/srv/nope/*", "*.md"]);
    expect(new PathPatterns([""]).empty).toBe(true);
  });
});
