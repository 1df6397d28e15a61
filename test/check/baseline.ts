// Renders diagnostics as a conformance baseline (`.diag`): one block per diagnostic with its
// position, code, severity and message, the source line, a caret/tilde underline and the hint.
// Positions are relative to the case file's directory so baselines do not depend on the machine.
import { dirname, isAbsolute, relative } from "node:path";
import type { Diagnostic } from "../../compiler/diagnostics.ts";
import { underline } from "../../cli/render.ts";

export function renderBaseline(caseFile: string, diagnostics: readonly Diagnostic[], texts: ReadonlyMap<string, string>): string {
  if (diagnostics.length === 0) return "(no diagnostics)\n";
  const local = (file: string) => (isAbsolute(file) ? relative(dirname(caseFile), file) : file);
  return diagnostics
    .map((d) => {
      let place = "-";
      if (d.span) {
        const file = d.span.file === caseFile ? "" : `${local(d.span.file)}:`;
        place = `${file}${d.span.line}:${d.span.col}`;
      } else if (d.where) {
        place = `(${local(d.where)})`;
      }
      let block = `${place} ${d.code} ${d.severity} ${d.message}\n`;
      const text = d.span ? texts.get(d.span.file) : undefined;
      if (d.span && text !== undefined) {
        const { line, marker } = underline(text, d.span);
        block += `    ${line}\n    ${marker}\n`;
      }
      if (d.hint) block += `    hint: ${d.hint}\n`;
      return block;
    })
    .join("\n");
}
