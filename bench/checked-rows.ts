// Which output rows a benchmark case compares with its float64 reference: every row at small
// sizes, an evenly spaced sample where the reference would take too long on the host.

/** Rows to compare: every row, or `limit` evenly spaced ones (first and last included). */
export function pickRows(total: number, limit: number): number[] {
  if (total <= limit) return Array.from({ length: total }, (_, i) => i);
  return Array.from({ length: limit }, (_, i) => Math.round((i * (total - 1)) / (limit - 1)));
}

/** What `rows` of `total` say in a report, e.g. "all 128 rows" or "32 of 2048 rows (evenly spaced)". */
export function rowsNote(rows: readonly number[], total: number, unit = "rows"): string {
  return rows.length === total ? `all ${total} ${unit}` : `${rows.length} of ${total} ${unit} (evenly spaced)`;
}
