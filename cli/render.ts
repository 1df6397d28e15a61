// Human-readable diagnostics: `file:line:col: error SFT2002: message`, then the source line with
// a caret under the span, then the hint. Also the JSON form for `--json`.
import { isAbsolute, relative } from "node:path";
import type { Diagnostic, Span } from "../compiler/diagnostics.ts";
import { paint, type Style } from "./io.ts";

/** A path as the user should read it: relative to the working directory when inside it. */
export function displayPath(file: string): string {
  if (!isAbsolute(file)) return file;
  const rel = relative(process.cwd(), file);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : file;
}

/** Terminal columns taken by `text` (CJK and full-width characters take two). */
function width(text: string): number {
  let w = 0;
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    const wide = (c >= 0x1100 && c <= 0x115f) || (c >= 0x2e80 && c <= 0xa4cf) || (c >= 0xac00 && c <= 0xd7a3) || (c >= 0xf900 && c <= 0xfaff) || (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xff60) || (c >= 0xffe0 && c <= 0xffe6) || c >= 0x1f300;
    w += wide ? 2 : 1;
  }
  return w;
}

/** The line of `text` a span starts on, and the marker line under it (`^~~~`). */
export function underline(text: string, span: Span): { line: string; marker: string } {
  const lines = text.split("\n");
  const line = (lines[span.line - 1] ?? "").replace(/\r$/, "").replace(/\t/g, " ");
  const start = Math.min(span.col - 1, line.length);
  const end = span.endLine === span.line ? Math.max(Math.min(span.endCol - 1, line.length), start) : line.length;
  const lead = " ".repeat(width(line.slice(0, start)));
  const marked = Math.max(width(line.slice(start, end)), 1);
  return { line, marker: `${lead}^${"~".repeat(marked - 1)}` };
}

const severityStyle: Record<string, Style> = { error: "red", warning: "yellow", info: "blue" };

export function renderDiagnostic(d: Diagnostic, texts: ReadonlyMap<string, string>, color: boolean): string {
  const where = d.span ? `${displayPath(d.span.file)}:${d.span.line}:${d.span.col}` : d.where ? displayPath(d.where) : "sftc";
  const head = `${paint(color, "bold", `${where}:`)} ${paint(color, severityStyle[d.severity], `${d.severity} ${d.code}`)}: ${paint(color, "bold", d.message)}\n`;
  let body = "";
  const text = d.span ? texts.get(d.span.file) : undefined;
  if (d.span && text !== undefined) {
    const { line, marker } = underline(text, d.span);
    const number = String(d.span.line);
    const gutter = " ".repeat(number.length);
    body += `${paint(color, "blue", ` ${number} |`)} ${line}\n`;
    body += `${paint(color, "blue", ` ${gutter} |`)} ${paint(color, severityStyle[d.severity], marker)}\n`;
  }
  if (d.hint) body += `${paint(color, "cyan", "  hint:")} ${d.hint}\n`;
  return head + body;
}

export function summarize(diagnostics: readonly Diagnostic[]): string {
  const count = (severity: string) => diagnostics.filter((d) => d.severity === severity).length;
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  return `${plural(count("error"), "error")}, ${plural(count("warning"), "warning")}`;
}

/** The `--json` form of one diagnostic. */
export function diagnosticJson(d: Diagnostic): Record<string, unknown> {
  const { span, ...rest } = d;
  return span ? { ...rest, file: displayPath(span.file), line: span.line, col: span.col, endLine: span.endLine, endCol: span.endCol } : rest;
}
