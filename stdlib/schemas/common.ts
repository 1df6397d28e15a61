// Builders for the JSON Schemas of `.sft` blocks. Every key carries a `description` (what it
// means, in the user's words) and, when it has one, a `default`; spec/language.md is generated
// from these, so the schema is the single place a key is documented.
import type { SchemaObject } from "ajv";

export type Schema = SchemaObject;

interface Bounds {
  min?: number;
  max?: number;
  /** Strict bounds: the value must be greater than `above` / less than `below`. */
  above?: number;
  below?: number;
}

interface Described<T> {
  default?: T;
}

function clean(schema: Record<string, unknown>): Schema {
  return Object.fromEntries(Object.entries(schema).filter(([, v]) => v !== undefined));
}

function bounds(b: Bounds): Record<string, number | undefined> {
  return { minimum: b.min, maximum: b.max, exclusiveMinimum: b.above, exclusiveMaximum: b.below };
}

export function integer(description: string, opts: Bounds & Described<number> = {}): Schema {
  return clean({ type: "integer", description, default: opts.default, ...bounds(opts) });
}

export function number(description: string, opts: Bounds & Described<number> = {}): Schema {
  return clean({ type: "number", description, default: opts.default, ...bounds(opts) });
}

export function boolean(description: string, opts: Described<boolean> = {}): Schema {
  return clean({ type: "boolean", description, default: opts.default });
}

export function string(description: string, opts: Described<string> = {}): Schema {
  return clean({ type: "string", description, default: opts.default, minLength: 1 });
}

/** A path, written as a string and resolved against the directory of the `.sft` file. */
export function path(description: string, kind: "file" | "directory" | "file or directory"): Schema {
  return { type: "string", minLength: 1, description, "x-path": kind };
}

export function oneOf<T extends string>(values: readonly T[], description: string, opts: Described<T> = {}): Schema {
  return clean({ type: "string", enum: [...values], description, default: opts.default });
}

export function listOf(item: Schema, description: string, opts: Described<unknown[]> & { minItems?: number } = {}): Schema {
  return clean({ type: "array", items: item, uniqueItems: true, minItems: opts.minItems, description, default: opts.default });
}

/** The schema of one block kind (`model chatglm2 { ... }`): a closed object. */
export function block(description: string, properties: Record<string, Schema>, extra: Record<string, unknown> = {}): Schema {
  return { type: "object", description, properties, additionalProperties: false, ...extra };
}

/**
 * A typed object value such as `cosine { warmup_steps = 100 }`. In JSON it is `{ "type": "cosine", ... }`;
 * a variant without required fields may also be written as a bare name (`schedule = constant`).
 */
export function typedObject(description: string, variants: Record<string, { description: string; properties: Record<string, Schema> }>, opts: Described<Record<string, unknown>> = {}): Schema {
  return clean({
    type: "object",
    description,
    default: opts.default,
    discriminator: { propertyName: "type" },
    properties: { type: { type: "string" } },
    required: ["type"],
    oneOf: Object.entries(variants).map(([name, v]) => ({
      type: "object",
      description: v.description,
      properties: { type: { const: name }, ...v.properties },
      additionalProperties: false,
    })),
  });
}
