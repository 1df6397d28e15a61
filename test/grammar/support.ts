import type { SftFile } from "../../grammar/ast.ts";

/** An AST without positions, comments or file name: what formatting and line endings must not change. */
export function meaning(ast: SftFile): string {
  return JSON.stringify(ast, (key, value) => (["span", "keywordSpan", "comments", "file"].includes(key) ? undefined : value));
}
