// Offset -> line/column in O(log n). Counts lines exactly as `lineCol` in
// compiler/diagnostics.ts does (only `\n` ends a line), so every span built here agrees with it.
import type { Span } from "../compiler/diagnostics.ts";

/** Precomputed line starts of one text; builds spans without rescanning the text. */
export class LineIndex {
  private readonly lineStarts: number[] = [0];

  constructor(
    readonly file: string,
    readonly text: string,
  ) {
    for (let i = 0; i < text.length; i++) {
      if (text.charCodeAt(i) === 10) this.lineStarts.push(i + 1);
    }
  }

  /** 1-based line and column of `offset` (clamped into the text). */
  position(offset: number): { line: number; col: number } {
    const at = Math.min(Math.max(offset, 0), this.text.length);
    let low = 0;
    let high = this.lineStarts.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if (this.lineStarts[mid] <= at) low = mid;
      else high = mid - 1;
    }
    return { line: low + 1, col: at - this.lineStarts[low] + 1 };
  }

  /** The span from `start` (inclusive) to `end` (exclusive). */
  span(start: number, end: number): Span {
    const from = Math.min(Math.max(start, 0), this.text.length);
    const to = Math.min(Math.max(end, from), this.text.length);
    const a = this.position(from);
    const b = this.position(to);
    return { file: this.file, offset: from, length: to - from, line: a.line, col: a.col, endLine: b.line, endCol: b.col };
  }
}
