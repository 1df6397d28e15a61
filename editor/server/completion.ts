// Completion of what is valid at the cursor: section keywords in a pipeline, kinds after a
// keyword, the keys a block accepts (less those already written), and a key's enum values.
import { CompletionItemKind, type CompletionItem } from "vscode-languageserver";
import { sectionKeywords, type Section, type SftFile } from "../../grammar/ast.ts";
import type { Schema } from "../../stdlib/schemas/common.ts";
import { sections } from "../../stdlib/schemas/index.ts";
import { keyDocumentation } from "./hover.ts";
import { locate, propertySchema, sectionSchema } from "./locate.ts";

const item = (label: string, kind: CompletionItemKind, documentation?: string, insertText?: string): CompletionItem => ({
  label,
  kind,
  ...(documentation ? { documentation: { kind: "markdown", value: documentation } } : {}),
  ...(insertText ? { insertText } : {}),
});

function keyItems(section: Section): CompletionItem[] {
  const present = new Set(section.entries.map((e) => e.key.name));
  const properties = (sectionSchema(section)?.properties ?? {}) as Record<string, Schema>;
  return Object.entries(properties)
    .filter(([key]) => !present.has(key))
    .map(([key, schema]) => item(key, CompletionItemKind.Property, keyDocumentation(key, schema), `${key} = `));
}

function valueItems(schema: Schema | undefined): CompletionItem[] {
  if (!schema) return [];
  if (schema.enum) return (schema.enum as string[]).map((v) => item(v, CompletionItemKind.EnumMember));
  if (schema.type === "boolean") return ["true", "false"].map((v) => item(v, CompletionItemKind.Value));
  if (schema.oneOf) {
    return (schema.oneOf as Schema[]).map((v) => {
      const name = String(v.properties?.type?.const);
      return item(name, CompletionItemKind.Struct, String(v.description ?? ""), `${name} { }`);
    });
  }
  if (schema.type === "array" && schema.items) return valueItems(schema.items as Schema);
  return [];
}

/** `linePrefix` is the text of the cursor's line up to the cursor. */
export function completionsAt(ast: SftFile, offset: number, linePrefix: string): CompletionItem[] {
  const place = locate(ast, offset);
  const afterKeyword = /^\s*(model|dataset|method|decode)\s+[A-Za-z_0-9]*$/.exec(linePrefix);
  if (afterKeyword) {
    const info = sections[afterKeyword[1] as Section["keyword"]];
    return Object.entries(info.kinds).map(([kind, schema]) => item(kind, CompletionItemKind.Class, String(schema.description ?? "")));
  }
  const afterEquals = /([A-Za-z_][A-Za-z0-9_]*)\s*=\s*\[?[^=]*$/.exec(linePrefix);
  const section = "section" in place ? place.section : undefined;
  if (afterEquals && section) {
    const nested = place.at === "value" && place.entry?.key.name === afterEquals[1] ? place.schema : undefined;
    return valueItems(nested ?? propertySchema(section, afterEquals[1]));
  }
  // A key may start a line or follow `{` or `,` on it.
  if (!/^\s*[A-Za-z_0-9]*$/.test(linePrefix.split(/[{,]/).pop() ?? "")) return [];
  if (section) return keyItems(section);
  if (place.at === "pipeline-body") return sectionKeywords.map((k) => item(k, CompletionItemKind.Keyword, sections[k].description));
  return [item("pipeline", CompletionItemKind.Keyword), item("import", CompletionItemKind.Keyword)];
}
