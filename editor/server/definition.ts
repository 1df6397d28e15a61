// Go to definition: an `import` path opens the imported file; an `extends` name jumps to the
// parent pipeline, in this file or in any file it imports.
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Location } from "vscode-languageserver";
import { pathToFileURL } from "node:url";
import type { SftFile } from "../../grammar/ast.ts";
import { parseSft } from "../../grammar/parse.ts";
import type { Span } from "../../compiler/diagnostics.ts";
import { locate } from "./locate.ts";

export const rangeOf = (span: Span) => ({
  start: { line: span.line - 1, character: span.col - 1 },
  end: { line: span.endLine - 1, character: span.endCol - 1 },
});

/** Reads the text of an imported file: from the open editors first, else from disk. */
export type SourceReader = (path: string) => string | undefined;

export function definitionAt(ast: SftFile, path: string, offset: number, read: SourceReader): Location | undefined {
  const place = locate(ast, offset);
  if (place.at === "import") {
    const target = resolve(dirname(path), place.path.value);
    if (!existsSync(target)) return undefined;
    return { uri: pathToFileURL(target).href, range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } } };
  }
  if (place.at !== "extends") return undefined;
  const seen = new Set<string>();
  const search = (file: string, tree: SftFile): Location | undefined => {
    if (seen.has(file)) return undefined;
    seen.add(file);
    const found = tree.pipelines.find((p) => p.name.name === place.parent.name);
    if (found) return { uri: pathToFileURL(file).href, range: rangeOf(found.name.span) };
    for (const decl of tree.imports) {
      const imported = resolve(dirname(file), decl.path.value);
      const text = read(imported);
      const result = text === undefined ? undefined : search(imported, parseSft(text, imported).ast);
      if (result) return result;
    }
    return undefined;
  };
  return search(path, ast);
}

