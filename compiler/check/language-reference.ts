// The parts of spec/language.md that are generated: the reference of every block and key (from
// the schemas), the family generation defaults and the table of diagnostic codes. A test keeps
// the document in sync (`SFT_UPDATE_BASELINES=1 npm test -- language-doc` rewrites it).
import type { SectionKeyword } from "../../grammar/ast.ts";
import type { Schema } from "../../stdlib/schemas/common.ts";
import { genericDecodeDefaults, keysUsedBy, strategies } from "../../stdlib/schemas/decode.ts";
import { sections } from "../../stdlib/schemas/index.ts";
import { families } from "../../stdlib/schemas/model.ts";
import { codes, type Code } from "../diagnostic-codes.ts";
import { codeAdvice } from "./code-advice.ts";

const cell = (text: string) => text.replace(/\|/g, "\\|").replace(/\n/g, " ");

function range(s: Schema): string {
  const lo = s.minimum !== undefined ? `≥ ${s.minimum}` : s.exclusiveMinimum !== undefined ? `> ${s.exclusiveMinimum}` : "";
  const hi = s.maximum !== undefined ? `≤ ${s.maximum}` : s.exclusiveMaximum !== undefined ? `< ${s.exclusiveMaximum}` : "";
  return [lo, hi].filter(Boolean).join(", ");
}

function typeOf(s: Schema): string {
  if (s.oneOf) return `typed object: ${(s.oneOf as Schema[]).map((v) => `\`${v.properties.type.const}\``).join(", ")}`;
  if (s.enum) return `one of ${(s.enum as string[]).map((v) => `\`${v}\``).join(", ")}`;
  if (s["x-path"]) return `path (${s["x-path"]})`;
  if (s.type === "array") return `list of ${typeOf(s.items as Schema)}`;
  const bounds = range(s);
  const base = s.type === "integer" ? "integer" : s.type === "number" ? "number" : s.type === "boolean" ? "boolean" : "string";
  return bounds ? `${base} ${bounds}` : base;
}

function defaultOf(s: Schema): string {
  if (s.default === undefined) return "";
  if (typeof s.default === "object" && s.default !== null && !Array.isArray(s.default)) return `\`${String((s.default as { type: string }).type)}\``;
  if (Array.isArray(s.default)) return s.default.length === 0 ? "`[]`" : `\`${JSON.stringify(s.default)}\``;
  return `\`${String(s.default)}\``;
}

function keyTable(schema: Schema): string[] {
  const required = new Set<string>((schema.required as string[] | undefined) ?? []);
  const rows = ["| key | type | default | meaning |", "|---|---|---|---|"];
  for (const [key, s] of Object.entries((schema.properties ?? {}) as Record<string, Schema>)) {
    const req = required.has(key) ? " (required)" : "";
    rows.push(`| \`${key}\`${req} | ${cell(typeOf(s))} | ${defaultOf(s)} | ${cell(String(s.description ?? ""))} |`);
    for (const variant of (s.oneOf ?? []) as Schema[]) {
      const fields = Object.entries((variant.properties ?? {}) as Record<string, Schema>).filter(([k]) => k !== "type");
      const list = fields.map(([k, f]) => `\`${k}\` (${typeOf(f)}${f.default !== undefined ? `, default ${defaultOf(f)}` : ""})`).join(", ");
      rows.push(`| ↳ \`${variant.properties.type.const}\` | ${list || "no fields"} | | ${cell(String(variant.description ?? ""))} |`);
    }
  }
  return rows;
}

/** Markdown reference of every section, kind and key. */
export function renderKeyReference(): string {
  const out: string[] = [];
  for (const [keyword, info] of Object.entries(sections) as [SectionKeyword, (typeof sections)[SectionKeyword]][]) {
    const kinds = Object.entries(info.kinds);
    const shape = info.kindNoun ? `${keyword} ${keyword === "dataset" ? "FORMAT [NAME]" : "KIND"} { ... }` : `${keyword} { ... }`;
    out.push(`### \`${shape}\``, "", `${info.description} ${info.required ? "Required" : "Optional"}${info.repeatable ? "; may appear several times" : ", at most once"}.`, "");
    for (const [kind, schema] of kinds) {
      if (info.kindNoun) out.push(`#### \`${keyword} ${kind}\``, "", String(schema.description ?? ""), "");
      out.push(...keyTable(schema), "");
    }
  }
  return out.join("\n");
}

/** Markdown table of each family's generation defaults and decoding keys per strategy. */
export function renderDecodeDefaults(): string {
  const keys = ["max_new_tokens", "temperature", "top_k", "top_p", "repetition_penalty"] as const;
  const out = ["| family | strategy without `decode` | " + keys.join(" | ") + " | source |", `|---|---|${keys.map(() => "---|").join("")}---|`];
  for (const [name, facts] of Object.entries(families)) {
    const g = facts.generation as unknown as Record<string, unknown>;
    out.push(`| \`${name}\` | \`${facts.generation.strategy}\` | ${keys.map((k) => (g[k] === undefined ? "" : String(g[k]))).join(" | ")} | ${cell(facts.generationSource)} |`);
  }
  out.push("", "Keys each strategy reads (others draw warning SFT2021); values not given by the user or the family fall back to:", "");
  out.push("| strategy | keys |", "|---|---|");
  for (const s of strategies) out.push(`| \`${s}\` | ${keysUsedBy[s].map((k) => `\`${k}\``).join(", ")} |`);
  out.push("", `Fallbacks: ${Object.entries(genericDecodeDefaults).map(([k, v]) => `\`${k}\` = ${JSON.stringify(v)}`).join(", ")}; \`top_k\` = 50 under \`decode top_k\`; \`seed\` = \`train.seed\`.`);
  return out.join("\n");
}

/** Markdown table of every diagnostic code. */
export function renderCodeTable(): string {
  const out = ["| code | severity | title | what to do |", "|---|---|---|---|"];
  for (const [code, info] of Object.entries(codes) as [Code, (typeof codes)[Code]][]) {
    out.push(`| ${code} | ${info.severity} | ${cell(info.title)} | ${cell(codeAdvice[code] ?? "follow the hint printed with the diagnostic")} |`);
  }
  return out.join("\n");
}

export const generatedBlocks: Record<string, () => string> = {
  keys: renderKeyReference,
  "decode-defaults": renderDecodeDefaults,
  codes: renderCodeTable,
};

/** `text` with every `<!-- generated:NAME -->...<!-- end generated:NAME -->` block regenerated. */
export function regenerate(text: string): string {
  let out = text;
  for (const [name, render] of Object.entries(generatedBlocks)) {
    const start = `<!-- generated:${name} -->`;
    const end = `<!-- end generated:${name} -->`;
    const i = out.indexOf(start);
    const j = out.indexOf(end);
    if (i < 0 || j < i) continue;
    out = `${out.slice(0, i + start.length)}\n${render()}\n${out.slice(j)}`;
  }
  return out;
}
