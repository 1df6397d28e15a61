// Hover documentation, taken from the same JSON Schemas the checker validates against.
import type { Hover } from "vscode-languageserver";
import type { SftFile } from "../../grammar/ast.ts";
import type { Schema } from "../../stdlib/schemas/common.ts";
import { sections } from "../../stdlib/schemas/index.ts";
import { locate, sectionSchema } from "./locate.ts";

function describeType(schema: Schema): string {
  if (schema.enum) return (schema.enum as string[]).map((v) => `\`${v}\``).join(" | ");
  if (schema.oneOf) return (schema.oneOf as Schema[]).map((v) => `\`${v.properties?.type?.const} { ... }\``).join(" | ");
  if (schema.type === "array") return `list of ${schema.items ? describeType(schema.items as Schema) : "values"}`;
  const range = [
    schema.minimum !== undefined ? `>= ${schema.minimum}` : "",
    schema.exclusiveMinimum !== undefined ? `> ${schema.exclusiveMinimum}` : "",
    schema.maximum !== undefined ? `<= ${schema.maximum}` : "",
    schema.exclusiveMaximum !== undefined ? `< ${schema.exclusiveMaximum}` : "",
  ].filter(Boolean);
  return `${schema["x-path"] ? `path to a ${schema["x-path"]}` : String(schema.type ?? "value")}${range.length ? ` (${range.join(", ")})` : ""}`;
}

export function keyDocumentation(key: string, schema: Schema): string {
  const lines = [`**${key}**: ${describeType(schema)}`, "", String(schema.description ?? "")];
  if (schema.default !== undefined) lines.push("", `Default: \`${JSON.stringify(schema.default)}\``);
  return lines.join("\n");
}

export function hoverAt(ast: SftFile, offset: number): Hover | undefined {
  const place = locate(ast, offset);
  const markdown = (value: string): Hover => ({ contents: { kind: "markdown", value } });
  switch (place.at) {
    case "key":
      return place.schema ? markdown(keyDocumentation(place.entry.key.name, place.schema)) : undefined;
    case "keyword": {
      const info = sections[place.section.keyword];
      const kinds = Object.keys(info.kinds).filter(Boolean);
      return markdown(`**${place.section.keyword}**: ${info.description}${kinds.length ? `\n\n${info.kindNoun}: ${kinds.map((k) => `\`${k}\``).join(", ")}` : ""}`);
    }
    case "kind": {
      const schema = sectionSchema(place.section);
      return schema ? markdown(`**${place.section.keyword} ${place.kind.name}**: ${schema.description ?? ""}`) : undefined;
    }
    case "value":
      return place.schema && place.entry ? markdown(keyDocumentation(place.entry.key.name, place.schema)) : undefined;
    default:
      return undefined;
  }
}
