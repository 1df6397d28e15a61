// Diagnostics are values: every phase returns them instead of throwing. `throw` is kept for
// broken internal invariants only (see `invariant`).
import { codes, type Code } from "./diagnostic-codes.ts";

/** A source range. Lines and columns are 1-based; offsets are 0-based UTF-16 indices. */
export interface Span {
  file: string;
  offset: number;
  length: number;
  line: number;
  col: number;
  endLine: number;
  endCol: number;
}

export type Severity = "error" | "warning" | "info";

export interface Diagnostic {
  code: Code;
  severity: Severity;
  message: string;
  /** Where in a `.sft` file; absent for problems in other files (see `where`). */
  span?: Span;
  /** For problems outside `.sft` sources: "data/belle.json:17", "model.layers.0.mlp.w1", ... */
  where?: string;
  /** What the user can do about it. */
  hint?: string;
}

export type Result<T> =
  | { ok: true; value: T; diagnostics: Diagnostic[] }
  | { ok: false; diagnostics: Diagnostic[] };

export function ok<T>(value: T, diagnostics: Diagnostic[] = []): Result<T> {
  return { ok: true, value, diagnostics };
}

export function fail<T = never>(...diagnostics: Diagnostic[]): Result<T> {
  return { ok: false, diagnostics };
}

/** Builds a diagnostic with the severity the code table gives it. */
export function diag(code: Code, message: string, at: { span?: Span; where?: string; hint?: string } = {}): Diagnostic {
  return { code, severity: codes[code].severity, message, ...at };
}

export function hasErrors(diagnostics: readonly Diagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === "error");
}

/** A broken internal invariant: a bug in sftc, never a user mistake. */
export function invariant(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`sftc internal error: ${message}`);
}

/** Span of `length` characters starting at `offset` in `text`. */
export function spanAt(file: string, text: string, offset: number, length: number): Span {
  const start = lineCol(text, offset);
  const end = lineCol(text, offset + length);
  return { file, offset, length, line: start.line, col: start.col, endLine: end.line, endCol: end.col };
}

export function lineCol(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let lineStart = 0;
  const stop = Math.min(Math.max(offset, 0), text.length);
  for (let i = 0; i < stop; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, col: stop - lineStart + 1 };
}
