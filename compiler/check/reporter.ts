// Collects diagnostics once each. The same node can be checked several times (a parent
// pipeline is flattened into each child), so a diagnostic is kept only the first time its
// code, place and message are seen.
import type { Diagnostic } from "../diagnostics.ts";

export class Reporter {
  readonly diagnostics: Diagnostic[] = [];
  private readonly seen = new Set<string>();

  report(d: Diagnostic): void {
    const place = d.span ? `${d.span.file}:${d.span.offset}:${d.span.length}` : (d.where ?? "");
    const key = `${d.code}|${place}|${d.message}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.diagnostics.push(d);
  }

  reportAll(ds: Iterable<Diagnostic>): void {
    for (const d of ds) this.report(d);
  }
}
