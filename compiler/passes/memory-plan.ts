// The memory planner: every activation and gradient a schedule writes gets a tenancy in a pool
// of whole buffers, reused by liveness: the largest tensors first, each into the smallest buffer
// whose tenants' lifetimes it does not overlap, else a new buffer of its own size. These are the
// buffers the GPU executor allocates (runtime/execute/memory.ts), so the plan's bytes are the
// runtime's: sizes are rounded as the runtime rounds them (storageBytes). One arena with byte
// offsets cannot be bound: WebGPU forbids a buffer bound read-only and writable in one dispatch,
// and a launch's tensors are all live in it, so no launch reads and writes one pool buffer.
// Weights, inputs and the AdamW state are persistent, and so are side outputs (attention's
// log-sum-exp, norm statistics, per-token losses), which the executor keeps for the backward.
import { numel, type DType, type Node } from "../ir/node.ts";
import { storageBytes } from "../../stdlib/kernels/dtype.ts";
import { entryFor } from "./kernel-catalog.ts";
import type { Schedule } from "./schedule.ts";

export type Category = "weights" | "gradients" | "optimizerState" | "activations" | "inputs";

export interface PlannedBuffer {
  node: Node;
  /** Bytes of the node's own buffer, as the runtime allocates it. */
  bytes: number;
  /** Bytes of its side outputs (allocated apart, kept as long as the executor). */
  sideBytes: number;
  category: Category;
  /** Launch index that writes it and the last launch that reads it (inclusive). */
  first: number;
  last: number;
  /** Index in `MemoryPlan.pool` (persistent buffers have their own allocations: -1). */
  slot: number;
  /** Offset of its pool buffer when the pool is laid end to end (persistent: -1). */
  offset: number;
}

/** One buffer of the pool: its tenants' lifetimes never overlap, and each fits in `bytes`. */
export interface PoolBuffer {
  bytes: number;
  offset: number;
  tenants: PlannedBuffer[];
}

export interface MemoryPlan {
  buffers: Map<Node, PlannedBuffer>;
  /** The shared buffers of activations and gradients. */
  pool: PoolBuffer[];
  /** Bytes of activations and gradients: the pool plus the side outputs. */
  arenaBytes: number;
  /** The same without reuse: every buffer its own space. */
  noReuseArenaBytes: number;
  /** The most of those bytes live at once: no placement can beat it. */
  liveLowerBoundBytes: number;
  /** Persistent bytes plus the arena. */
  peakBytes: number;
  /** Weights, inputs and optimizer state: allocation sizes; gradients: total; activations: peak live (side outputs are in the arena). */
  categories: Record<Category, number>;
}

export function bytesPerElement(dtype: DType): number {
  return dtype === "f16" || dtype === "bf16" ? 2 : 4;
}

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
    const extra = entryFor(node.op)?.extraBytes?.(node) ?? 0;
    const bytes = storageBytes(node.dtype, numel(node.shape));
    buffers.set(node, { node, bytes, sideBytes: extra && storageBytes("u32", extra / 4), category, first, last: first, slot: -1, offset: -1 });
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

  const pooled = [...buffers.values()].filter((b) => b.category === "gradients" || b.category === "activations");
  const pool = assignPool(pooled, opts.noReuse ?? false);
  const poolBytes = pool.reduce((sum, p) => sum + p.bytes, 0);
  const sideBytes = [...buffers.values()].reduce((sum, b) => sum + b.sideBytes, 0);

  // most bytes live at once: a sweep over launch indices (lifetime starts and ends as deltas)
  const live = (category?: Category) => {
    const delta = new Float64Array(end + 3);
    for (const b of pooled) {
      if (category && b.category !== category) continue;
      delta[b.first + 1] += b.bytes;
      delta[b.last + 2] -= b.bytes;
    }
    let peak = 0;
    for (let t = 0, sum = 0; t < delta.length; t++) peak = Math.max(peak, (sum += delta[t]));
    return peak;
  };
  const total = (c: Category) => [...buffers.values()].filter((b) => b.category === c).reduce((acc, b) => acc + b.bytes, 0);
  const trained = [...s.outputViews].filter(([name]) => name.startsWith("grad.")).map(([, v]) => numel(v.shape));
  const optimizerBytes = opts.optimizerBytesPerElement ?? 8;
  const categories: Record<Category, number> = {
    weights: total("weights"),
    inputs: total("inputs"),
    gradients: total("gradients"),
    // one f32-word buffer per trained tensor and state (AdamW: m and v)
    optimizerState: trained.reduce((acc, n) => acc + (optimizerBytes / 4) * storageBytes("f32", n), 0),
    activations: live("activations"),
  };
  const arenaBytes = poolBytes + sideBytes;
  const noReuseArenaBytes = pooled.reduce((sum, b) => sum + b.bytes, 0) + sideBytes;
  const peakBytes = categories.weights + categories.inputs + categories.optimizerState + arenaBytes;
  return { buffers, pool, arenaBytes, noReuseArenaBytes, liveLowerBoundBytes: live() + sideBytes, peakBytes, categories };
}

// Largest first, each into the smallest pool buffer none of whose tenants is live with it (all
// fit: a buffer is opened by its largest tenant), else into a new buffer; `noReuse`: each alone.
// Lifetimes that meet at one launch overlap: that launch reads the one and writes the other.
function assignPool(pooled: PlannedBuffer[], noReuse: boolean): PoolBuffer[] {
  const pool: PoolBuffer[] = [];
  const apart = (b: PlannedBuffer) => (p: PoolBuffer) => p.tenants.every((t) => t.last < b.first || b.last < t.first);
  for (const b of [...pooled].sort((x, y) => y.bytes - x.bytes || x.first - y.first)) {
    let home: PoolBuffer | undefined;
    if (!noReuse) for (const p of pool.filter(apart(b))) if (!home || p.bytes < home.bytes) home = p;
    if (!home) pool.push((home = { bytes: b.bytes, offset: 0, tenants: [] }));
    home.tenants.push(b);
  }
  let offset = 0;
  pool.forEach((p, i) => {
    p.offset = offset;
    offset += p.bytes;
    for (const t of p.tenants) Object.assign(t, { slot: i, offset: p.offset });
  });
  return pool;
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
    `arena: ${formatBytes(p.arenaBytes)} planned in ${p.pool.length} shared buffers and side outputs, ${formatBytes(p.liveLowerBoundBytes)} live at most, ${formatBytes(p.noReuseArenaBytes)} without reuse`,
    `gradients ${formatBytes(c.gradients)}, activations peak ${formatBytes(c.activations)}`,
  ].join("\n");
}
