// Where a run's GPU time goes: per-dispatch timestamps (CommandBatch with timestamps) summed by
// kernel name. Each timed dispatch runs in its own compute pass, so consecutive kernels cannot
// overlap and the sum can exceed an untimed run's time; the shares are what the profile is for.
import type { KernelTiming } from "../runtime/gpu/batch.ts";
import { table } from "./table.ts";

/** The GPU time of one kernel (by spec name) over a profiled run. */
export interface ProfileRow {
  kernel: string;
  dispatches: number;
  ns: number;
  /** ns over the run's total. */
  share: number;
}

/** Timings summed by kernel name, largest first. */
export function kernelProfile(timings: readonly KernelTiming[]): ProfileRow[] {
  const byName = new Map<string, { dispatches: number; ns: number }>();
  for (const t of timings) {
    const row = byName.get(t.name) ?? { dispatches: 0, ns: 0 };
    row.dispatches++;
    row.ns += t.ns;
    byName.set(t.name, row);
  }
  const total = timings.reduce((sum, t) => sum + t.ns, 0);
  return [...byName]
    .map(([kernel, r]) => ({ kernel, ...r, share: total > 0 ? r.ns / total : 0 }))
    .sort((a, b) => b.ns - a.ns);
}

/** A Markdown table of `rows` with their total. */
export function profileTable(rows: readonly ProfileRow[]): string {
  const total = rows.reduce((sum, r) => sum + r.ns, 0);
  const dispatches = rows.reduce((sum, r) => sum + r.dispatches, 0);
  const body = rows.map((r) => [r.kernel, String(r.dispatches), (r.ns / 1e6).toFixed(2), `${(100 * r.share).toFixed(1)}%`]);
  body.push(["total", String(dispatches), (total / 1e6).toFixed(2), "100%"]);
  return table(["kernel", "dispatches", "GPU ms", "share"], body);
}
