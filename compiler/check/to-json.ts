// AST values -> plain JSON for schema validation, remembering for every JSON pointer the span
// of its key and value so that a schema error can point at the exact source text.
import type { Entry, Value } from "../../grammar/ast.ts";
import { invariant, type Span } from "../diagnostics.ts";
import type { Schema } from "../../stdlib/schemas/common.ts";
import { uniqueEntries } from "./flatten.ts";
import type { Reporter } from "./reporter.ts";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface Located {
  key?: Span;
  value: Span;
  /** How the value was written (a quoted string or a bare name both become a JSON string). */
  written?: Value["kind"];
  /** For a typed object: the span of its type name. */
  type?: Span;
}

export interface SectionJson {
  json: Record<string, Json>;
  /** JSON pointer ("/schedule/warmup_steps", "/targets/1") -> source spans. */
  spans: Map<string, Located>;
}

/** Whether a property schema is a typed object (a bare name may stand for a variant with no fields). */
function isTypedObject(schema: Schema | undefined): boolean {
  return schema !== undefined && "discriminator" in schema;
}

export function entriesToJson(entries: Entry[], properties: Record<string, Schema>, reporter: Reporter): SectionJson {
  const out: SectionJson = { json: {}, spans: new Map() };
  for (const entry of entries) {
    const pointer = `/${entry.key.name}`;
    const value = entry.value.kind === "ident" && isTypedObject(properties[entry.key.name])
      ? { kind: "object" as const, type: { name: entry.value.name, span: entry.value.span }, entries: [], span: entry.value.span }
      : entry.value;
    out.json[entry.key.name] = convert(value, pointer, out, reporter);
    out.spans.set(pointer, { ...out.spans.get(pointer), key: entry.key.span, value: entry.value.span });
  }
  return out;
}

function convert(value: Value, pointer: string, out: SectionJson, reporter: Reporter): Json {
  switch (value.kind) {
    case "number":
    case "string":
    case "bool":
      out.spans.set(pointer, { value: value.span, written: value.kind });
      return value.value;
    case "ident":
      out.spans.set(pointer, { value: value.span, written: value.kind });
      return value.name;
    case "list":
      out.spans.set(pointer, { value: value.span });
      return value.items.map((item, i) => convert(item, `${pointer}/${i}`, out, reporter));
    case "object": {
      out.spans.set(pointer, { value: value.span, type: value.type.span });
      const object: { [key: string]: Json } = { type: value.type.name };
      for (const entry of uniqueEntries(value.entries, reporter)) {
        const inner = `${pointer}/${entry.key.name}`;
        object[entry.key.name] = convert(entry.value, inner, out, reporter);
        out.spans.set(inner, { ...out.spans.get(inner), key: entry.key.span, value: entry.value.span });
      }
      return object;
    }
    case "error":
      // The parser reported it, and checking stops at syntax errors (check.ts).
      invariant(false, "an unreadable value reached the checker");
  }
}
