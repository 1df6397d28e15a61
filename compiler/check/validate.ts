// Validates one section against its JSON Schema (ajv) and turns each schema error into a
// diagnostic at the exact key or value it concerns, with a stable code per kind of mistake.
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import type { Schema } from "../../stdlib/schemas/common.ts";
import { diag, type Diagnostic, type Span } from "../diagnostics.ts";
import { didYouMean, listNames } from "./suggest.ts";
import type { Json, Located, SectionJson } from "./to-json.ts";

const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false, discriminator: true, verbose: true });
ajv.addKeyword({ keyword: "x-path" });
const compiled = new Map<Schema, ValidateFunction>();

function validator(schema: Schema): ValidateFunction {
  let v = compiled.get(schema);
  if (!v) {
    v = ajv.compile(schema);
    compiled.set(schema, v);
  }
  return v;
}

/** What the user wrote a section as, for messages: `model chatglm2`, `train`. */
export interface SectionContext {
  title: string;
  header: Span;
  /** The other kinds of the same section (`method lora` beside `method full`), to say where a key belongs. */
  siblings: Record<string, Schema>;
}

/** Validates `data` against `schema`; returns one diagnostic per problem (at most one per place). */
export function validateSection(schema: Schema, data: SectionJson, context: SectionContext): Diagnostic[] {
  const validate = validator(schema);
  if (validate(data.json)) return [];
  const out: Diagnostic[] = [];
  const placesReported = new Set<string>();
  for (const error of validate.errors ?? []) {
    if (error.keyword === "if") continue; // its `then`/`else` branch reported the real problem
    const place = placeOf(error);
    if (placesReported.has(place)) continue;
    const d = toDiagnostic(error, schema, data, context);
    if (!d) continue;
    placesReported.add(place);
    out.push(d);
  }
  return out;
}

function placeOf(error: ErrorObject): string {
  const p = error.params as Record<string, unknown>;
  if (error.keyword === "additionalProperties") return `${error.instancePath}/${String(p.additionalProperty)}`;
  if (error.keyword === "required") return `${error.instancePath}/${String(p.missingProperty)}`;
  return error.instancePath;
}

/** The key a pointer belongs to: `/schedule/warmup_steps` -> `warmup_steps`, `/targets/1` -> `targets`. */
function keyName(pointer: string): string {
  const parts = pointer.split("/").filter((s) => s !== "" && !/^\d+$/.test(s));
  return parts[parts.length - 1] ?? "";
}

function describeJson(value: unknown, written: Located["written"]): string {
  if (Array.isArray(value)) return "a list";
  if (value !== null && typeof value === "object") return `a typed object (\`${String((value as { type?: unknown }).type)} { ... }\`)`;
  if (typeof value === "string") return written === "ident" ? `a name (\`${value}\`)` : `a string (\`${JSON.stringify(value)}\`)`;
  if (typeof value === "boolean") return `a boolean (\`${value}\`)`;
  return `a number (\`${String(value)}\`)`;
}

const expected: Record<string, string> = {
  number: "a number",
  integer: "a whole number",
  string: "a string or name",
  boolean: "`true` or `false`",
  array: "a list `[...]`",
  object: "a typed object such as `cosine { warmup_steps = 100 }`",
};

function toDiagnostic(error: ErrorObject, schema: Schema, data: SectionJson, context: SectionContext): Diagnostic | undefined {
  const pointer = error.instancePath;
  const at = data.spans.get(pointer);
  const key = keyName(pointer);
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case "additionalProperties": {
      const name = String(params.additionalProperty);
      const known = Object.keys((error.parentSchema?.properties ?? {}) as Record<string, unknown>).filter((k) => k !== "type");
      const inside = pointer === "" ? `\`${context.title}\`` : `\`${key} ${String((error.data as { type?: unknown }).type)} { ... }\``;
      const suggestion = didYouMean(name, known);
      const owners = pointer === "" ? Object.entries(context.siblings).filter(([, s]) => name in ((s.properties ?? {}) as object)).map(([kind]) => kind) : [];
      const keyword = context.title.split(" ")[0];
      let hint = known.length ? `known keys: ${listNames(known)}` : "this takes no keys";
      if (owners.length > 0) hint = `\`${name}\` is a key of ${listNames(owners.map((kind) => `${keyword} ${kind}`))}`;
      return diag("SFT2002", `unknown key \`${name}\` in ${inside}${suggestion}`, {
        span: data.spans.get(`${pointer}/${name}`)?.key ?? context.header,
        hint: suggestion && owners.length === 0 ? undefined : hint,
      });
    }
    case "required": {
      const name = String(params.missingProperty);
      const description = (schema.properties as Record<string, Schema> | undefined)?.[name]?.description;
      const owner = pointer === "" ? `\`${context.title}\`` : `\`${key}\``;
      return diag("SFT2003", `${owner} needs \`${name}\``, {
        span: pointer === "" ? context.header : (at?.type ?? at?.value ?? context.header),
        hint: description ? `\`${name}\`: ${description}` : undefined,
      });
    }
    case "type": {
      const want = expected[String(params.type)] ?? String(params.type);
      const whole = params.type === "integer" && typeof error.data === "number";
      const got = whole ? `\`${String(error.data)}\`` : describeJson(error.data, at?.written);
      return diag("SFT3001", `\`${key}\` must be ${want}, not ${got}`, { span: at?.value ?? context.header });
    }
    case "minimum":
    case "maximum":
    case "exclusiveMinimum":
    case "exclusiveMaximum": {
      const words = { minimum: "at least", maximum: "at most", exclusiveMinimum: "greater than", exclusiveMaximum: "less than" }[error.keyword];
      return diag("SFT3002", `\`${key}\` must be ${words} ${String(params.limit)}, not ${String(error.data)}`, { span: at?.value ?? context.header });
    }
    case "minLength":
      return diag("SFT3002", `\`${key}\` must not be empty`, { span: at?.value ?? context.header });
    case "enum": {
      const allowed = (error.schema as Json[]).map(String);
      const got = String(error.data);
      const item = /\/\d+$/.test(pointer) ? ` in \`${key}\`` : ` for \`${key}\``;
      return diag("SFT2018", `unknown value \`${got}\`${item}${didYouMean(got, allowed)}`, {
        span: at?.value ?? context.header,
        hint: `use one of ${listNames(allowed)}`,
      });
    }
    case "discriminator": {
      const variants = ((error.parentSchema?.oneOf ?? []) as Schema[]).map((v) => String(v.properties?.type?.const));
      const got = String(params.tagValue);
      return diag("SFT2018", `unknown ${key} \`${got}\`${didYouMean(got, variants)}`, {
        span: at?.type ?? at?.value ?? context.header,
        hint: `use one of ${listNames(variants)}`,
      });
    }
    case "minItems":
      return diag("SFT3003", `\`${key}\` needs at least ${String(params.limit)} item${params.limit === 1 ? "" : "s"}`, { span: at?.value ?? context.header });
    case "uniqueItems": {
      const later = Math.max(Number(params.i), Number(params.j));
      const item = (error.data as Json[])[later];
      return diag("SFT3003", `\`${key}\` lists \`${String(item)}\` twice`, { span: data.spans.get(`${pointer}/${later}`)?.value ?? at?.value ?? context.header });
    }
    case "oneOf":
      return undefined; // a discriminated union reports through its chosen variant
    default:
      return diag("SFT3001", `\`${key}\` ${error.message ?? "is invalid"}`, { span: at?.value ?? context.header });
  }
}
