// The KV cache of one generation session on the GPU. Per layer, the keys and the values are each
// one device buffer (B, capacity, KV · D), in the runner's cache dtype (f16 for a 16-bit model,
// compiler/plan/storage.ts kvCacheDtype), that the step graph's past inputs are bound to; each
// row's positions end at the longest row's length (rows right-aligned there, the rest masked by
// the step's key ranges), and the capacity is a bucket above it, so a step compiles one executor
// per bucket, not per length. A decode step reads the cache in place (cached_attention) and its
// new keys and values are then written after every row's last position (kv_append): a few
// kilobytes, not the cache. Only when the capacity is full do the rows move to the next bucket's
// buffers (a copy of the cache once a bucket, one buffer at a time, each old one freed after its
// copy), and a beam reorder gathers rows by buffer copies through one scratch buffer: neither
// holds two caches at once.
// Only a prompt (the first step) adds several tokens. The prompt's step
// reads a placeholder past of one masked key, so that its keys and values come out of the
// concatenation as whole buffers rather than as strided views of a fused projection; the step
// copies each layer's into the bucket as soon as they are written (ExecutorOptions.copyOut), so its
// arena holds one layer's at a time, not every layer's. Nothing of the cache crosses to or from
// the host.
import { invariant } from "../../compiler/diagnostics.ts";
import type { Graph } from "../../compiler/ir/node.ts";
import { bytesPerElement } from "../../stdlib/kernels/dtype.ts";
import { GraphExecutor, type ExecutorOptions } from "../execute/executor.ts";
import type { Compiled } from "../../compiler/passes/compile.ts";
import type { CopyRange, KernelTiming } from "../gpu/batch.ts";
import type { GpuDevice } from "../gpu/device.ts";
import { createTensor, type GpuTensor } from "../gpu/tensor.ts";
import { CommandBatch } from "../gpu/batch.ts";
import { BoundSteps } from "../gpu/bound-steps.ts";
import { tensorView, type View } from "../../compiler/passes/views.ts";
import type { CopyStep, DispatchStep } from "../gpu/bound-steps.ts";
import type { TensorView } from "../../stdlib/kernels/attention-layout.ts";
import type { KernelSpec } from "../../stdlib/kernels/kernel.ts";
import { kvAppendKernel, kvAppendUniforms } from "../../stdlib/kernels/kv-append.ts";
import { CACHE, cacheCapacity, PROMPT_PLACEHOLDER_KEYS, type CacheDType, type CachedStepShape } from "../../compiler/models/cached-graph.ts";
import type { CacheDims, StepCache } from "./cached-model.ts";

/** What a session's cache needs from its runner: compiled steps, device weights, counters. */
export interface StepPrograms {
  readonly gpu: GpuDevice;
  /** Cache capacities are multiples of this (a one-token prompt's placeholder excepted). */
  readonly bucket: number;
  /** The dtype the cache's buffers hold (the step graphs' past inputs are declared so). */
  readonly cacheDtype: CacheDType;
  /** Step graph `g` compiled (its schedule and memory plan), once per graph. */
  compiled(g: Graph): Compiled;
  /** The device tensors of the dense weights `g` reads (uploaded, or quantized to NF4, when first fed). */
  weights(g: Graph, feeds: ReadonlyMap<string, Float64Array>): ReadonlyMap<string, GpuTensor>;
  /** Whether the runner holds weight `name` (dense or NF4): a feed of that name is not an input. */
  holds(name: string): boolean;
  /** Bytes written from the host into the inputs that are neither weights nor cache. */
  countInputBytes(bytes: number): void;
  /** The weights stored as NF4 and their lookup tables, which the matmuls bind (none without). */
  nf4(): ExecutorOptions["nf4"];
  /** Whether steps time every dispatch, and where their timings go. */
  readonly profile: StepProfile;
}

/**
 * While `enabled`, every step runs with each dispatch in its own timed pass (slower: no
 * overlap) and appends the GPU times to `timings`: where a step's time goes.
 */
export interface StepProfile {
  enabled: boolean;
  timings: KernelTiming[];
}

/** One bucket's buffers for `batch` rows: per layer (B, past, KV · D), `past` the capacity. */
interface Layout {
  batch: number;
  past: number;
  keys: GpuTensor[];
  values: GpuTensor[];
}

export class DeviceKvCache implements StepCache {
  /** Cached positions of each row; each row's end at their maximum. */
  private lengths: number[] = [];
  private current: Layout | undefined;
  private readonly layouts = new Map<string, Layout>();
  /** Step executors, each with the layout its past inputs are bound to and its last decode step's appends, kept for the next (appendRows). */
  private readonly executors = new Map<Graph, StepExecutor>();
  /** The kernel that appends a decode step's new keys and values, storing them in the cache's dtype. */
  private readonly append: KernelSpec;

  constructor(
    private readonly programs: StepPrograms,
    private readonly dims: CacheDims,
  ) {
    this.append = kvAppendKernel(programs.cacheDtype);
  }

  private get end(): number {
    return this.lengths.length ? Math.max(...this.lengths) : 0;
  }

  pastLength(past: number): number {
    if (past === 0) return PROMPT_PLACEHOLDER_KEYS;
    invariant(this.current && past === this.end && past <= this.current.past, `a step over ${past} cached positions while the cache holds ${this.end} in ${this.current?.past}`);
    return this.current.past;
  }

  async step(g: Graph, feeds: ReadonlyMap<string, Float64Array>, shape: CachedStepShape, fresh: readonly number[]): Promise<Float64Array> {
    const { gpu } = this.programs;
    const { batch: B, past: P, fresh: T } = shape;
    const starting = this.current === undefined;
    const layout = this.current ?? this.layout(B, P);
    invariant(layout.batch === B && layout.past === P, "a step reads the cache's current layout");
    // rows end at `end`, not at the capacity the concatenation would put them before new tokens
    invariant(T === 1 || starting, `${T} new tokens over a device cache that holds positions: only a prompt adds several`);
    const before = starting ? fresh.map(() => 0) : this.lengths;
    const lengths = before.map((n, r) => n + fresh[r]);
    const end = Math.max(...lengths);
    // several new tokens: each row's cached and new positions come out of the concatenation (the
    // graph's all_keys.L, whole buffers, right-aligned at P + T; the prompt's layout is its one-key
    // placeholder, never the next one), copied into the next bucket's buffers as each layer's are
    // written, so the step's arena frees them after that layer's attention
    const joined = T > 1 ? { into: this.layout(B, this.capacityFor(end)), end, rowLength: P + T, rows: inPlace(lengths) } : undefined;
    // the weights were uploaded when the executor was made (executor()): feeds of theirs are skipped
    const stepExecutor = this.executor(g, feeds, layout, joined);
    const { executor } = stepExecutor;
    for (const [name, values] of feeds) {
      if (this.programs.holds(name)) continue;
      executor.write(name, values);
      this.programs.countInputBytes(4 * values.length);
    }
    const { profile } = this.programs;
    const ran = await executor.run({ timestamps: profile.enabled });
    invariant(ran.ok, `running a generation step: ${ran.ok ? "" : ran.diagnostics.map((d) => d.message).join("; ")}`);
    if (profile.enabled) profile.timings.push(...ran.value);

    let next: Layout;
    if (joined) next = joined.into;
    else {
      // a decode step read the cache in place: its new key and value go to column end - 1 of
      // every row, after the rows move to the next bucket's buffers when this one is full
      next = end <= layout.past ? layout : await this.moveRows(layout, { batch: B, past: this.capacityFor(end) }, inPlace(before), end - 1, end - 1);
      this.appendRows(stepExecutor, next, end - 1); // after the copies into `next`, in queue order
    }
    const logits = await executor.read("logits");
    const errors = await gpu.takeErrors();
    invariant(errors.length === 0, `GPU errors in a generation step: ${errors.map((e) => e.message).join("; ")}`);
    this.lengths = lengths;
    this.moveTo(next);
    return logits;
  }

  async reorder(sources: readonly number[]): Promise<void> {
    const { gpu } = this.programs;
    const from = this.current;
    invariant(from, "reordering a cache before its first step");
    const fromEnd = this.end;
    const lengths = sources.map((i) => this.lengths[i]);
    const end = Math.max(...lengths);
    const gather = sources.map((i, r) => ({ from: i, to: r, n: lengths[r] }));
    // the rows keep their bucket (only a step moves them up); a change of row count (a beam
    // search's fork) makes a new cache
    invariant(end <= from.past, `a reorder's rows end at ${end}, past their bucket of ${from.past}`);
    let to = from;
    if (sources.length !== from.batch) to = await this.moveRows(from, { batch: sources.length, past: from.past }, gather, fromEnd, end);
    else {
      // a buffer cannot be copied into itself: each is gathered into one cleared scratch buffer
      // and copied back whole, in order in one submission, so a reorder holds one buffer more
      // than the cache rather than a second cache
      const scratch = this.cacheBuffer(to.batch, to.past, "kv cache gathered");
      const encoder = gpu.device.createCommandEncoder();
      for (let layer = 0; layer < this.dims.layers; layer++) {
        for (const kind of ["keys", "values"] as const) {
          const dst = to[kind][layer];
          encoder.clearBuffer(scratch.buffer);
          this.copyRows(encoder, rowsOf(from, fromEnd)(kind, layer), { tensor: scratch, rowLength: to.past, end }, gather);
          encoder.copyBufferToBuffer(scratch.buffer, 0, dst.buffer, dst.byteOffset, dst.byteSize);
        }
      }
      gpu.queue.submit([encoder.finish()]);
      await gpu.queue.onSubmittedWorkDone();
      scratch.destroy();
    }
    this.lengths = lengths;
    this.moveTo(to);
  }

  free(): void {
    for (const e of this.executors.values()) destroyStepExecutor(e);
    for (const l of this.layouts.values()) for (const t of [...l.keys, ...l.values]) t.destroy();
    this.executors.clear();
    this.layouts.clear();
    this.current = undefined;
    this.lengths = [];
  }

  // The cache now lives in `layout`: the buffers of other layouts and the executors bound to them
  // are freed, so a session holds one bucket's cache at a time. (An executor appends into the
  // layout the cache then moves to: the appends of those kept are into `layout`.)
  private moveTo(layout: Layout): void {
    this.current = layout;
    for (const [g, e] of this.executors) {
      if (e.layout === layout) continue;
      destroyStepExecutor(e);
      this.executors.delete(g);
    }
    for (const [key, l] of this.layouts) {
      if (l === layout) continue;
      for (const t of [...l.keys, ...l.values]) t.destroy();
      this.layouts.delete(key);
    }
  }

  /**
   * `rows` of `from` (positions ending at `fromEnd`) in a new layout of `shape`'s rows and
   * positions (ending at `end`), made one buffer at a time: each of `from`'s buffers is freed once
   * its copy is done, so a move holds the new cache and one buffer of the old, not both caches. A
   * wait per buffer: a move comes once a bucket (and a beam search's fork once).
   */
  private async moveRows(from: Layout, shape: { batch: number; past: number }, rows: readonly RowCopy[], fromEnd: number, end: number): Promise<Layout> {
    const { gpu } = this.programs;
    const to: Layout = { ...shape, keys: [], values: [] };
    for (let layer = 0; layer < this.dims.layers; layer++) {
      for (const kind of ["keys", "values"] as const) {
        const tensor = this.cacheBuffer(shape.batch, shape.past, `kv cache ${kind}.${layer}`);
        to[kind].push(tensor);
        const encoder = gpu.device.createCommandEncoder();
        this.copyRows(encoder, rowsOf(from, fromEnd)(kind, layer), { tensor, rowLength: shape.past, end }, rows);
        gpu.queue.submit([encoder.finish()]);
        await gpu.queue.onSubmittedWorkDone();
        from[kind][layer].destroy();
      }
    }
    this.layouts.set(layoutKey(shape.batch, shape.past), to);
    return to;
  }

  /** One layer's keys or values for `batch` rows of `past` positions: (B, past, KV · D) in the cache's dtype. */
  private cacheBuffer(batch: number, past: number, label: string): GpuTensor {
    return createTensor(this.programs.gpu, this.programs.cacheDtype, [batch, past, this.dims.width], label);
  }

  private capacityFor(end: number): number {
    return cacheCapacity(end, this.programs.bucket);
  }

  // One executor per step graph, its past inputs bound to the layout it reads; a prompt's copies
  // its keys and values out into `joined.into` (a prompt's executor runs once: a session has one).
  private executor(g: Graph, feeds: ReadonlyMap<string, Float64Array>, layout: Layout, joined?: JoinedRows): StepExecutor {
    const kept = this.executors.get(g);
    if (kept) {
      invariant(!joined, "a prompt's step runs once a session");
      return kept;
    }
    const copyOut = new Map<string, (output: GpuTensor) => CopyStep[]>();
    for (let layer = 0; joined && layer < this.dims.layers; layer++)
      for (const kind of ["keys", "values"] as const) {
        const dst = rowsOf(joined.into, joined.end)(kind, layer);
        copyOut.set(kind === "keys" ? CACHE.allKeys(layer) : CACHE.allValues(layer), (output) => {
          const src = { tensor: output, rowLength: joined.rowLength, end: joined.rowLength };
          return this.rowRanges(src, dst, joined.rows).map((range) => ({ kind: "copy", src: output, dst: dst.tensor, range }));
        });
      }
    const bound = new Map(this.programs.weights(g, feeds));
    for (let layer = 0; layer < this.dims.layers; layer++) {
      bound.set(CACHE.pastKey(layer), layout.keys[layer]);
      bound.set(CACHE.pastValue(layer), layout.values[layer]);
    }
    // activations share buffers by lifetime, as the memory plan places them: a prompt's step holds
    // one layer's intermediates at a time instead of every layer's
    const { schedule, plan } = this.programs.compiled(g);
    const created = GraphExecutor.create(this.programs.gpu, schedule, bound, { plan, nf4: this.programs.nf4(), copyOut });
    invariant(created.ok, `preparing a generation step: ${created.ok ? "" : created.diagnostics.map((d) => d.message).join("; ")}`);
    const made = { executor: created.value, layout };
    this.executors.set(g, made);
    return made;
  }

  private layout(batch: number, past: number): Layout {
    const key = layoutKey(batch, past);
    let layout = this.layouts.get(key);
    if (!layout) {
      const make = (kind: KvKind) => Array.from({ length: this.dims.layers }, (_, l) => this.cacheBuffer(batch, past, `kv cache ${kind}.${l}`));
      layout = { batch, past, keys: make("keys"), values: make("values") };
      this.layouts.set(key, layout);
    }
    return layout;
  }

  /** Copies the `n` positions of row `from` of `src` that end at `src.end` to end at `dst.end` in row `to` of `dst` (rowRanges). */
  private copyRows(encoder: GPUCommandEncoder, src: RowBuffer, dst: RowBuffer, rows: readonly RowCopy[]): void {
    for (const { srcOffset, dstOffset, bytes } of this.rowRanges(src, dst, rows))
      encoder.copyBufferToBuffer(src.tensor.buffer, src.tensor.byteOffset + srcOffset, dst.tensor.buffer, dst.tensor.byteOffset + dstOffset, bytes);
  }

  /** The byte ranges that copy the `n` positions of row `from` of `src` ending at `src.end` to end at `dst.end` in row `to` of `dst`; rows are (rowLength, width); empty rows copy nothing. */
  private rowRanges(src: RowBuffer, dst: RowBuffer, rows: readonly RowCopy[]): CopyRange[] {
    invariant(src.tensor.dtype === dst.tensor.dtype, `cache copy ${src.tensor.label} -> ${dst.tensor.label}: dtypes differ`);
    const bytes = this.dims.width * bytesPerElement(src.tensor.dtype);
    invariant(bytes % 4 === 0, `cache rows of ${this.dims.width} ${src.tensor.dtype} values are not whole 4-byte words, which buffer copies need (kvCacheDtype keeps such a cache f32)`);
    return rows.flatMap(({ from, to, n }) => {
      invariant(n <= src.end && n <= dst.end && src.end <= src.rowLength && dst.end <= dst.rowLength, `cache copy of ${n} positions ending at ${src.end} of ${src.rowLength} into ${dst.end} of ${dst.rowLength}`);
      return n > 0 ? [{ srcOffset: (from * src.rowLength + src.end - n) * bytes, dstOffset: (to * dst.rowLength + dst.end - n) * bytes, bytes: n * bytes }] : [];
    });
  }

  /**
   * Writes each row's new key and value of every layer (the step's key.L, value.L (B, 1, KV, D))
   * at `column` of `dst`'s rows, in one submission. The dispatches of one executor into one layout
   * are kept with it, bound: decode steps repeat them until the bucket changes.
   */
  private appendRows(step: StepExecutor, dst: Layout, column: number): void {
    const { gpu } = this.programs;
    const { executor } = step;
    if (step.appends?.layout !== dst) {
      step.appends?.bound.destroy();
      const steps = Array.from({ length: this.dims.layers }, (_, layer): DispatchStep => {
        const [keys, values] = [CACHE.key(layer), CACHE.value(layer)].map((name) => executor.outputView(name));
        invariant(keys.tensor.dtype === "f32" && values.tensor.dtype === "f32", "a step's new keys and values are f32");
        const [B, , heads, headDim] = keys.view.shape;
        const uniforms = kvAppendUniforms({ batch: B, heads, headDim, rowLength: dst.past, column }, stepView(keys.view), stepView(values.view));
        return { kind: "dispatch", spec: this.append, uniforms, tensors: { k_new: keys.tensor, v_new: values.tensor, k_cache: dst.keys[layer], v_cache: dst.values[layer] } };
      });
      step.appends = { layout: dst, steps, bound: new BoundSteps(gpu, steps) };
    } else {
      for (const s of step.appends.steps) s.uniforms.column = column;
      step.appends.bound.update();
    }
    const batch = new CommandBatch(gpu);
    step.appends.bound.record(batch);
    batch.flush();
  }
}

/** A step graph's executor, the layout its past inputs are bound to, and its decode step's appends. */
interface StepExecutor {
  executor: GraphExecutor;
  layout: Layout;
  appends?: Appends;
}

/** The kv_append dispatches of an executor's new keys into `layout`, bound. */
interface Appends {
  layout: Layout;
  steps: DispatchStep[];
  bound: BoundSteps;
}

function destroyStepExecutor(e: StepExecutor): void {
  e.executor.destroy();
  e.appends?.bound.destroy();
}

// A step output's view (B, 1, KV, D) as the append kernel reads it: heads of contiguous dims.
function stepView(view: View): TensorView {
  invariant(view.shape.length === 4 && view.shape[1] === 1 && view.strides[3] === 1, `a step's new keys [${view.shape}] with strides ${view.strides}`);
  return tensorView(view);
}

type KvKind = "keys" | "values";

const layoutKey = (batch: number, past: number) => `${batch},${past}`;

/** The row buffers of `layout`'s keys or values, positions ending at `end`. */
const rowsOf = (layout: Layout, end: number) => (kind: KvKind, layer: number): RowBuffer => ({ tensor: layout[kind][layer], rowLength: layout.past, end });

/** Row `from` of one buffer to row `to` of another: its last `n` positions. */
interface RowCopy {
  from: number;
  to: number;
  n: number;
}

/** Every row to the same row, its last `lengths[r]` positions. */
const inPlace = (lengths: readonly number[]): RowCopy[] => lengths.map((n, r) => ({ from: r, to: r, n }));

/** A prompt's rows, right-aligned at `rowLength` in its concatenations, and the bucket they go to, ending at `end`. */
interface JoinedRows {
  into: Layout;
  end: number;
  rowLength: number;
  rows: readonly RowCopy[];
}

/** Rows of a cache buffer (B, rowLength, width) whose positions end at `end`. */
interface RowBuffer {
  tensor: GpuTensor;
  rowLength: number;
  end: number;
}
