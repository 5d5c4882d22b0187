import fc from "fast-check";

/** The part of JSON Schema (as /openapi.json writes it) the fuzzer reads. */
export interface Schema {
  type?: string | string[];
  $ref?: string;
  enum?: unknown[];
  const?: unknown;
  format?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minItems?: number;
  maxItems?: number;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: Schema | boolean;
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  default?: unknown;
}

/** Strings a hostile or careless client sends: paths that climb, NULs, huge numbers, injections, non-ASCII. */
const NASTY = fc.constantFrom(
  "",
  " ",
  "..",
  "../../etc/passwd",
  "/",
  "/etc/shadow",
  "\u0000",
  "a\u0000b",
  "%00",
  "'; drop table plans; --",
  "' OR '1'='1",
  "${jndi:ldap://x}",
  "<script>alert(1)</script>",
  "ünïcødé/路径",
  "\ud800",
  "NaN",
  "-1",
  "1e309",
  "9007199254740993",
  "s3:http://169.254.169.254/latest",
  "latest",
  "0123456789abcdef",
);

const text = (max = 64) => fc.oneof({ weight: 3, arbitrary: fc.string({ maxLength: max, unit: "grapheme" }) }, { weight: 1, arbitrary: NASTY });

/**
 * Values for a schema: mostly of the declared shape (so requests get past the
 * parser and reach the handlers), sometimes anything at all (so the validators
 * meet what they were not written for).
 */
export function arbitraryFor(schema: Schema, components: Record<string, Schema>, depth = 0): fc.Arbitrary<unknown> {
  const wild = fc.jsonValue({ maxDepth: 2 });
  if (depth > 6) return fc.constant(null);
  return fc.oneof({ weight: 5, arbitrary: shaped(schema, components, depth) }, { weight: 1, arbitrary: wild });
}

function shaped(schema: Schema, components: Record<string, Schema>, depth: number): fc.Arbitrary<unknown> {
  if (schema.$ref) return arbitraryFor(components[schema.$ref.split("/").pop()!] ?? {}, components, depth + 1);
  const branches = [...(schema.anyOf ?? []), ...(schema.oneOf ?? []), ...(schema.allOf ?? [])];
  if (branches.length) return fc.oneof(...branches.map((b) => arbitraryFor(b, components, depth + 1)));
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum) return fc.oneof(fc.constantFrom(...schema.enum), text(16));
  const types = [schema.type].flat().filter((t): t is string => typeof t === "string");
  if (!types.length) return fc.jsonValue({ maxDepth: 2 });
  return fc.oneof(...types.map((t) => ofType(t, schema, components, depth)));
}

function ofType(type: string, schema: Schema, components: Record<string, Schema>, depth: number): fc.Arbitrary<unknown> {
  switch (type) {
    case "null":
      return fc.constant(null);
    case "boolean":
      return fc.boolean();
    case "integer":
      return fc.oneof(fc.integer({ min: schema.minimum ?? -1000, max: schema.maximum ?? 1_000_000 }), fc.constantFrom(-1, 0, 2 ** 53, -(2 ** 31)), fc.double());
    case "number":
      return fc.oneof(fc.double({ noNaN: true }), fc.integer());
    case "string":
      if (schema.format === "date-time") return fc.oneof(fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), text(40));
      return fc.oneof(
        text(Math.min(schema.maxLength ?? 64, 64)),
        fc.string({ minLength: schema.maxLength ?? 0, maxLength: (schema.maxLength ?? 0) + 2 }),
        fc.constantFrom("/tmp/cairn-fuzz", "/var/www", "0 3 * * *", "UTC", "30d", "*.tmp", "viewer", "operator", "admin"),
      );
    case "array":
      return fc.array(arbitraryFor(schema.items ?? {}, components, depth + 1), { maxLength: Math.min(schema.maxItems ?? 8, 8) + 1 });
    case "object": {
      const props = Object.entries(schema.properties ?? {});
      const record: Record<string, fc.Arbitrary<unknown>> = Object.fromEntries(props.map(([k, s]) => [k, arbitraryFor(s, components, depth + 1)]));
      const base = fc.record(record, { requiredKeys: (schema.required ?? []).filter((k) => k in record) });
      const extra = typeof schema.additionalProperties === "object" ? fc.dictionary(text(24), arbitraryFor(schema.additionalProperties, components, depth + 1), { maxKeys: 4 }) : fc.constant({});
      return fc.tuple(base, extra, fc.boolean()).map(([known, more, stray]) => ({ ...more, ...known, ...(stray ? { unexpected: "field" } : {}) }));
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}
