// The memory planner: every activation and gradient a schedule writes gets a place in a pool of
// GPU buffers, reused by liveness: the largest tensors first, each at the lowest offset of a
// buffer where it overlaps no tensor live with it, in the buffer it makes grow least, else in a
// new buffer of its own size. These are the buffers the GPU executor allocates
// (runtime/execute/memory.ts), so the plan's bytes are the runtime's: sizes are rounded as the
// runtime rounds them (storageBytes), offsets to WebGPU's largest storage offset alignment.
// Tensors live together may share a buffer only where no launch binds both and writes one of
// them: WebGPU forbids a buffer bound read-only and writable in one dispatch, whatever the
// ranges. Weights, inputs and the AdamW state are persistent, and so are side outputs
// (attention's log-sum-exp and norm statistics that a backward of the schedule reads,
// saved-statistics.ts; per-token losses), which the executor keeps for the backward.
import { GRAD_OUTPUT } from "../autodiff/grad.ts";
import { invariant } from "../diagnostics.ts";
import { numel, type DType, type Node } from "../ir/node.ts";
import { storageBytes } from "../../stdlib/kernels/dtype.ts";
import { entryFor } from "./kernel-catalog.ts";
import type { Schedule } from "./schedule.ts";
import { statisticsRead, writesStatistics } from "./saved-statistics.ts";

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
  /** Where it starts in its pool buffer (persistent: -1). */
  bufferOffset: number;
  /** Where it starts when the pool is laid end to end (persistent: -1). */
  offset: number;
}

/** One buffer of the pool: tenants live together take disjoint ranges, and no launch binds two of them with a write. */
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
  /** The graph outputs freed after their last read in the schedule (PlanOptions.copiedOut that are outputs): an executor must copy them out. */
  copiedOut: ReadonlySet<string>;
}

export function bytesPerElement(dtype: DType): number {
  return dtype === "f16" || dtype === "bf16" ? 2 : 4;
}

export interface PlanOptions {
  /** Assign every buffer its own space (the baseline that reuse is measured against). */
  noReuse?: boolean;
  /** Bytes of optimizer state per trainable element (AdamW: m and v in f32 = 8). */
  optimizerBytesPerElement?: number;
  /**
   * Outputs the executor copies out as soon as their launch writes them (ExecutorOptions.copyOut):
   * they live until their last read in the schedule, not until the step's end.
   */
  copiedOut?: ReadonlySet<string>;
}

export function planMemory(s: Schedule, opts: PlanOptions = {}): MemoryPlan {
  const end = s.launches.length;
  const buffers = new Map<Node, PlannedBuffer>();
  const gradOutputs = new Set([...s.outputViews].filter(([name]) => name.startsWith(GRAD_OUTPUT)).map(([, v]) => v.base));
  const read = statisticsRead(s);
  const add = (node: Node, first: number, category: Category) => {
    // statistics no backward reads go to the launch workspace (launch-scratch.ts)
    const kept = !writesStatistics(node) || read.has(node);
    const extra = kept ? (entryFor(node.op)?.extraBytes?.(node) ?? 0) : 0;
    const bytes = storageBytes(node.dtype, numel(node.shape));
    buffers.set(node, { node, bytes, sideBytes: extra && storageBytes("u32", extra / 4), category, first, last: first, slot: -1, bufferOffset: -1, offset: -1 });
  };
  s.launches.forEach((l, i) => {
    for (const { view } of l.inputs) {
      const base = view.base;
      if (!buffers.has(base)) add(base, -1, base.op === "param" ? "weights" : "inputs");
      buffers.get(base)!.last = i;
    }
    for (const o of l.outputs) add(o, i, gradOutputs.has(o) ? "gradients" : "activations");
  });
  const copiedOut = new Set<string>();
  for (const [name, v] of s.outputViews) {
    if (!buffers.has(v.base)) add(v.base, -1, v.base.op === "param" ? "weights" : "inputs");
    if (opts.copiedOut?.has(name)) copiedOut.add(name);
    else buffers.get(v.base)!.last = end; // read back after the last launch
  }

  const pooled = [...buffers.values()].filter((b) => b.category === "gradients" || b.category === "activations");
  const pool = assignPool(pooled, opts.noReuse ? undefined : conflicts(s, pooled));
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
  const trained = [...s.outputViews].filter(([name]) => name.startsWith(GRAD_OUTPUT)).map(([, v]) => numel(v.shape));
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
  return { buffers, pool, arenaBytes, noReuseArenaBytes, liveLowerBoundBytes: live() + sideBytes, peakBytes, categories, copiedOut };
}

/** WebGPU's largest minStorageBufferOffsetAlignment: offsets in a pool buffer are multiples of it on every device. */
export const POOL_OFFSET_ALIGNMENT = 256;

/** A pool buffer grows past its first tenant only up to WebGPU's default maxBufferSize. */
const POOL_BUFFER_GROWTH_LIMIT = 256 * 2 ** 20;

// Each pooled tensor's partners that may not share its buffer: those a launch binds beside it
// while writing one of the two. Two tensors only read by a launch may share one.
function conflicts(s: Schedule, pooled: PlannedBuffer[]): Map<PlannedBuffer, Set<PlannedBuffer>> {
  const byNode = new Map(pooled.map((b) => [b.node, b]));
  const out = new Map<PlannedBuffer, Set<PlannedBuffer>>(pooled.map((b) => [b, new Set()]));
  for (const l of s.launches) {
    const written = l.outputs.flatMap((n) => byNode.get(n) ?? []);
    const bound = [...written, ...l.inputs.flatMap((i) => byNode.get(i.view.base) ?? [])];
    for (const w of written) {
      for (const b of bound) {
        if (b === w) continue;
        out.get(w)!.add(b);
        out.get(b)!.add(w);
      }
    }
  }
  return out;
}

// Largest first, each at the lowest aligned offset of a buffer clear of the tenants live with it
// (lifetimes that meet at one launch overlap: that launch reads the one and writes the other), in
// the buffer it makes grow least (a buffer opened by a tenant larger than the growth limit grows
// no further), skipping buffers that hold one of its conflicts; a new buffer when every buffer
// would grow by its whole size. Without `conflicting` (no reuse): each alone.
function assignPool(pooled: PlannedBuffer[], conflicting: Map<PlannedBuffer, Set<PlannedBuffer>> | undefined): PoolBuffer[] {
  const pool: PoolBuffer[] = [];
  const aligned = (n: number) => Math.ceil(n / POOL_OFFSET_ALIGNMENT) * POOL_OFFSET_ALIGNMENT;
  const together = (a: PlannedBuffer, b: PlannedBuffer) => !(a.last < b.first || b.last < a.first);
  for (const b of [...pooled].sort((x, y) => y.bytes - x.bytes || x.first - y.first)) {
    let home: { buffer: PoolBuffer; at: number; growth: number } | undefined;
    const partners = conflicting?.get(b);
    invariant(!conflicting || partners, "every pooled buffer has its conflicts listed");
    for (const buffer of partners ? pool : []) {
      if (buffer.tenants.some((t) => partners!.has(t))) continue;
      const at = lowestClearOffset(buffer.tenants.filter((t) => together(t, b)), b.bytes, aligned);
      if (at + b.bytes > Math.max(buffer.bytes, POOL_BUFFER_GROWTH_LIMIT)) continue;
      const growth = Math.max(0, at + b.bytes - buffer.bytes);
      if (growth < b.bytes && (!home || growth < home.growth)) home = { buffer, at, growth };
      if (home?.growth === 0) break;
    }
    if (!home) pool.push((home = { buffer: { bytes: b.bytes, offset: 0, tenants: [] }, at: 0, growth: 0 }).buffer);
    home.buffer.bytes = Math.max(home.buffer.bytes, home.at + b.bytes);
    home.buffer.tenants.push(b);
    b.bufferOffset = home.at;
  }
  let offset = 0;
  pool.forEach((p, i) => {
    p.offset = offset;
    offset += p.bytes;
    for (const t of p.tenants) Object.assign(t, { slot: i, offset: p.offset + t.bufferOffset });
  });
  return pool;
}

// The lowest aligned offset where `bytes` overlap none of `live`'s ranges.
function lowestClearOffset(live: PlannedBuffer[], bytes: number, aligned: (n: number) => number): number {
  let at = 0;
  for (const t of [...live].sort((x, y) => x.bufferOffset - y.bufferOffset)) {
    if (t.bufferOffset >= at + bytes) break;
    at = Math.max(at, aligned(t.bufferOffset + t.bytes));
  }
  return at;
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
