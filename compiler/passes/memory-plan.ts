// The memory planner: every buffer a schedule writes gets an offset in one arena, reusing the
// space of buffers that are no longer live (first fit, largest first). Weights, inputs and the
// AdamW state are persistent. The plan reports the peak and the bytes per category.
import { numel, type DType, type Node } from "../ir/node.ts";
import { entryFor } from "./kernel-catalog.ts";
import type { Schedule } from "./schedule.ts";

export type Category = "weights" | "gradients" | "optimizerState" | "activations" | "inputs";

export interface PlannedBuffer {
  node: Node;
  bytes: number;
  category: Category;
  /** Launch index that writes it and the last launch that reads it (inclusive). */
  first: number;
  last: number;
  /** Offset in the arena (persistent buffers have their own allocations: -1). */
  offset: number;
}

export interface MemoryPlan {
  buffers: Map<Node, PlannedBuffer>;
  /** Size of the reusable arena (activations and gradients). */
  arenaBytes: number;
  /** The arena without reuse: every buffer its own space. */
  noReuseArenaBytes: number;
  /** The most arena bytes live at once: no placement can beat it. */
  liveLowerBoundBytes: number;
  /** Persistent bytes plus the arena. */
  peakBytes: number;
  /** Weights, inputs and optimizer state: allocation sizes; gradients: total; activations: peak live. */
  categories: Record<Category, number>;
}

// Offsets are aligned for WebGPU storage-buffer bindings (minStorageBufferOffsetAlignment).
const ALIGNMENT = 256;

export function bytesPerElement(dtype: DType): number {
  return dtype === "f16" || dtype === "bf16" ? 2 : 4;
}

const align = (n: number) => Math.ceil(n / ALIGNMENT) * ALIGNMENT;

export interface PlanOptions {
  /** Assign every buffer its own space (the baseline that reuse is measured against). */
  noReuse?: boolean;
  /** Bytes of optimizer state per trainable element (AdamW: m and v in f32 = 8). */
  optimizerBytesPerElement?: number;
}

export function planMemory(s: Schedule, opts: PlanOptions = {}): MemoryPlan {
  const end = s.launches.length;
  const buffers = new Map<Node, PlannedBuffer>();
  const gradOutputs = new Set([...s.outputViews].filter(([name]) => name.startsWith("grad.")).map(([, v]) => v.base));
  const add = (node: Node, first: number, category: Category) => {
    // a side output (attention's log-sum-exp) lives as long as the result: one allocation
    const extra = entryFor(node.op)?.extraBytes?.(node) ?? 0;
    buffers.set(node, { node, bytes: numel(node.shape) * bytesPerElement(node.dtype) + extra, category, first, last: first, offset: -1 });
  };
  s.launches.forEach((l, i) => {
    for (const { view } of l.inputs) {
      const base = view.base;
      if (!buffers.has(base)) add(base, -1, base.op === "param" ? "weights" : "inputs");
      buffers.get(base)!.last = i;
    }
    for (const o of l.outputs) add(o, i, gradOutputs.has(o) ? "gradients" : "activations");
  });
  for (const v of s.outputViews.values()) {
    if (!buffers.has(v.base)) add(v.base, -1, v.base.op === "param" ? "weights" : "inputs");
    buffers.get(v.base)!.last = end; // read back after the last launch
  }

  const arena = [...buffers.values()].filter((b) => b.category === "gradients" || b.category === "activations");
  const noReuseArenaBytes = arena.reduce((sum, b) => sum + align(b.bytes), 0);
  // a residual epilogue whose operand dies at that launch writes over the operand in place
  const shares = new Map<PlannedBuffer, PlannedBuffer>(); // buffer -> the allocation it lives in
  const home = (b: PlannedBuffer) => shares.get(b) ?? b;
  if (!opts.noReuse)
    s.launches.forEach((l, i) => {
      const operand = l.accumulates && buffers.get(l.accumulates);
      const out = buffers.get(l.outputs[0])!;
      if (operand && l.outputs.length === 1 && operand.last === i && operand.category === "activations" && operand.bytes === out.bytes) shares.set(out, home(operand));
    });
  const allocations = arena.filter((b) => !shares.has(b)).map((b) => ({ ...b, members: [b] }));
  const byHome = new Map(allocations.map((a) => [a.members[0], a]));
  for (const [b, h] of shares) {
    const a = byHome.get(h)!;
    a.members.push(b);
    a.first = Math.min(a.first, b.first);
    a.last = Math.max(a.last, b.last);
  }

  let arenaBytes = 0;
  if (opts.noReuse) {
    for (const a of allocations) {
      a.offset = arenaBytes;
      arenaBytes += align(a.bytes);
    }
  } else {
    // first fit, largest first: scan placed allocations by offset, skipping those not live together
    const placed: typeof allocations = []; // sorted by offset
    for (const a of [...allocations].sort((x, y) => y.bytes - x.bytes || x.first - y.first)) {
      let offset = 0;
      for (const p of placed) {
        if (p.last < a.first || a.last < p.first) continue;
        if (offset + align(a.bytes) <= p.offset) break;
        offset = Math.max(offset, p.offset + align(p.bytes));
      }
      a.offset = offset;
      const at = placed.findIndex((p) => p.offset > offset);
      placed.splice(at < 0 ? placed.length : at, 0, a);
      arenaBytes = Math.max(arenaBytes, offset + align(a.bytes));
    }
  }
  for (const a of allocations) for (const m of a.members) m.offset = a.offset;

  // most bytes live at once: a sweep over launch indices (allocation starts and ends as deltas)
  const live = (category?: Category) => {
    const delta = new Float64Array(end + 3);
    for (const a of allocations) {
      if (category && a.category !== category) continue;
      delta[a.first + 1] += align(a.bytes);
      delta[a.last + 2] -= align(a.bytes);
    }
    let peak = 0;
    for (let t = 0, sum = 0; t < delta.length; t++) peak = Math.max(peak, (sum += delta[t]));
    return peak;
  };
  const total = (c: Category) => [...buffers.values()].filter((b) => b.category === c).reduce((acc, b) => acc + align(b.bytes), 0);
  const trainable = [...s.outputViews].filter(([name]) => name.startsWith("grad.")).reduce((acc, [, v]) => acc + numel(v.shape), 0);
  const categories: Record<Category, number> = {
    weights: total("weights"),
    inputs: total("inputs"),
    gradients: total("gradients"),
    optimizerState: align(trainable * (opts.optimizerBytesPerElement ?? 8)),
    activations: live("activations"),
  };
  const peakBytes = categories.weights + categories.inputs + categories.optimizerState + arenaBytes;
  return { buffers, arenaBytes, noReuseArenaBytes, liveLowerBoundBytes: live(), peakBytes, categories };
}

/** Bytes in the largest binary unit that keeps the figure at or above 1. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

/** A human-readable summary, one figure per line. */
export function formatMemoryPlan(p: MemoryPlan): string {
  const c = p.categories;
  return [
    `peak ${formatBytes(p.peakBytes)} = weights ${formatBytes(c.weights)} + inputs ${formatBytes(c.inputs)} + optimizer state ${formatBytes(c.optimizerState)} + arena ${formatBytes(p.arenaBytes)}`,
    `arena: ${formatBytes(p.arenaBytes)} planned, ${formatBytes(p.liveLowerBoundBytes)} live at most, ${formatBytes(p.noReuseArenaBytes)} without reuse`,
    `gradients ${formatBytes(c.gradients)}, activations peak ${formatBytes(c.activations)}`,
  ].join("\n");
}
