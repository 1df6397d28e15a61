// What is under the cursor in a `.sft` document: which pipeline, section and entry, and
// whether the cursor is on a key, a value, a section kind, an import path or a parent name.
// Hover, completion and go-to-definition all start here.
import type { Entry, Identifier, ImportDecl, PipelineDecl, Section, SftFile, StringValue, Value } from "../../grammar/ast.ts";
import type { Span } from "../../compiler/diagnostics.ts";
import type { Schema } from "../../stdlib/schemas/common.ts";
import { noKind, sections } from "../../stdlib/schemas/index.ts";

export type Place =
  | { at: "import"; decl: ImportDecl; path: StringValue }
  | { at: "extends"; pipeline: PipelineDecl; parent: Identifier }
  | { at: "keyword"; section: Section }
  | { at: "kind"; section: Section; kind: Identifier }
  | { at: "key"; section: Section; entry: Entry; schema?: Schema }
  | { at: "value"; section: Section; entry?: Entry; value?: Value; schema?: Schema }
  | { at: "section-body"; section: Section }
  | { at: "pipeline-body"; pipeline: PipelineDecl }
  | { at: "top" };

const contains = (span: Span, offset: number) => offset >= span.offset && offset <= span.offset + span.length;

/** The schema of a section's block, when its keyword and kind are known. */
export function sectionSchema(section: Section): Schema | undefined {
  const info = sections[section.keyword];
  return info.kinds[info.kindNoun ? (section.kind?.name ?? "\0") : noKind];
}

export function propertySchema(section: Section, key: string): Schema | undefined {
  return (sectionSchema(section)?.properties as Record<string, Schema> | undefined)?.[key];
}

/** The innermost entry containing `offset` (typed objects nest entries). */
function findEntry(entries: readonly Entry[], offset: number, schema: Schema | undefined): { entry: Entry; schema?: Schema } | undefined {
  for (const entry of entries) {
    if (!contains(entry.span, offset)) continue;
    const property = (schema?.properties as Record<string, Schema> | undefined)?.[entry.key.name];
    if (entry.value.kind === "object" && contains(entry.value.span, offset) && !contains(entry.value.type.span, offset)) {
      const variant = (property?.oneOf as Schema[] | undefined)?.find((v) => v.properties?.type?.const === (entry.value as { type: Identifier }).type.name);
      const inner = findEntry(entry.value.entries, offset, variant);
      if (inner) return inner;
    }
    return { entry, schema: property };
  }
  return undefined;
}

export function locate(ast: SftFile, offset: number): Place {
  for (const decl of ast.imports) {
    if (contains(decl.path.span, offset)) return { at: "import", decl, path: decl.path };
  }
  for (const pipeline of ast.pipelines) {
    if (!contains(pipeline.span, offset)) continue;
    if (pipeline.extends && contains(pipeline.extends.span, offset)) return { at: "extends", pipeline, parent: pipeline.extends };
    for (const section of pipeline.sections) {
      if (!contains(section.span, offset)) continue;
      if (contains(section.keywordSpan, offset)) return { at: "keyword", section };
      if (section.kind && contains(section.kind.span, offset)) return { at: "kind", section, kind: section.kind };
      const found = findEntry(section.entries, offset, sectionSchema(section));
      if (!found) return { at: "section-body", section };
      const { entry, schema } = found;
      if (contains(entry.key.span, offset)) return { at: "key", section, entry, schema };
      return { at: "value", section, entry, value: entry.value, schema };
    }
    return { at: "pipeline-body", pipeline };
  }
  return { at: "top" };
}
