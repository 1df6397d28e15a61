// The KV cache of one generation session on the GPU. Per layer, the keys and the values are each
// one device buffer (B, past, KV · D) that the step graph's past inputs are bound to; `past` is
// the longest row's cached length rounded up to a bucket, each row's positions right-aligned, the
// rest masked by the step's key ranges, so a step compiles one executor per bucket, not per
// length. After a step, each row's cached and new keys (the graph's `all_keys.L`, whole buffers)
// are copied on the device into the buffers of the next bucket; a beam reorder gathers rows by
// buffer copies. Nothing of the cache crosses to or from the host. The prompt's step reads a past
// of one masked key, so that its keys and values too come out of the concatenation as whole
// buffers rather than as strided views of a fused projection.
import { invariant } from "../../compiler/diagnostics.ts";
import type { Graph } from "../../compiler/ir/node.ts";
import { bytesPerElement } from "../../stdlib/kernels/dtype.ts";
import { GraphExecutor, type ExecutorOptions } from "../execute/executor.ts";
import type { Schedule } from "../../compiler/passes/schedule.ts";
import type { KernelTiming } from "../gpu/batch.ts";
import type { GpuDevice } from "../gpu/device.ts";
import { createTensor, type GpuTensor } from "../gpu/tensor.ts";
import { CACHE, type CachedStepShape } from "./cached-graph.ts";
import type { CacheDims, StepCache } from "./cached-model.ts";

/** What a session's cache needs from its runner: compiled steps, device weights, counters. */
export interface StepPrograms {
  readonly gpu: GpuDevice;
  /** Cache lengths are multiples of this. */
  readonly bucket: number;
  /** The schedule of step graph `g`, compiled once per graph. */
  schedule(g: Graph): Schedule;
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

/** One bucket's buffers for `batch` rows: per layer (B, past, KV · D). */
interface Layout {
  batch: number;
  past: number;
  keys: GpuTensor[];
  values: GpuTensor[];
}

export class DeviceKvCache implements StepCache {
  /** Cached positions of each row. */
  private lengths: number[] = [];
  private current: Layout | undefined;
  private readonly layouts = new Map<string, Layout>();
  /** Step executors, each with the layout its past inputs are bound to. */
  private readonly executors = new Map<Graph, { executor: GraphExecutor; layout: Layout }>();

  constructor(
    private readonly programs: StepPrograms,
    private readonly dims: CacheDims,
  ) {}

  pastLength(past: number): number {
    if (past === 0) return 1; // the prompt's masked key
    const length = this.bucketed(past);
    invariant(length === this.current?.past, `a step over ${past} cached positions while the cache holds ${this.current?.past}`);
    return length;
  }

  async step(g: Graph, feeds: ReadonlyMap<string, Float64Array>, shape: CachedStepShape, fresh: readonly number[]): Promise<Float64Array> {
    const { gpu } = this.programs;
    const { batch: B, past: P, fresh: T } = shape;
    const starting = this.current === undefined;
    const layout = this.current ?? this.layout(B, P);
    invariant(layout.batch === B && layout.past === P, "a step reads the cache's current layout");
    // the weights were uploaded when the executor was made (executor()): feeds of theirs are skipped
    const executor = this.executor(g, feeds, layout);
    for (const [name, values] of feeds) {
      if (this.programs.holds(name)) continue;
      executor.write(name, values);
      this.programs.countInputBytes(4 * values.length);
    }
    const { profile } = this.programs;
    const ran = await executor.run({ timestamps: profile.enabled });
    invariant(ran.ok, `running a generation step: ${ran.ok ? "" : ran.diagnostics.map((d) => d.message).join("; ")}`);
    if (profile.enabled) profile.timings.push(...ran.value);

    // each row's cached and new positions, right-aligned in the step's (B, P + T) outputs
    const lengths = (starting ? fresh.map(() => 0) : this.lengths).map((n, r) => n + fresh[r]);
    const next = this.layout(B, this.bucketed(Math.max(...lengths)));
    const encoder = gpu.device.createCommandEncoder();
    const rows = lengths.map((n, r) => ({ from: r, to: r, n }));
    for (let layer = 0; layer < this.dims.layers; layer++) {
      const keys = executor.outputTensor(CACHE.allKeys(layer));
      const values = executor.outputTensor(CACHE.allValues(layer));
      invariant(keys && values, "a step's keys and values are whole buffers the cache copies from");
      this.copyRows(encoder, keys, P + T, next.keys[layer], next.past, rows);
      this.copyRows(encoder, values, P + T, next.values[layer], next.past, rows);
    }
    gpu.queue.submit([encoder.finish()]);
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
    const lengths = sources.map((i) => this.lengths[i]);
    const to = this.layout(sources.length, this.bucketed(Math.max(...lengths)));
    // a buffer cannot be copied into itself: gather into scratch buffers, then copy them back
    const gathered = to === from ? this.newLayout(to.batch, to.past, "gathered") : to;
    const encoder = gpu.device.createCommandEncoder();
    const rows = sources.map((i, r) => ({ from: i, to: r, n: lengths[r] }));
    for (let layer = 0; layer < this.dims.layers; layer++) {
      this.copyRows(encoder, from.keys[layer], from.past, gathered.keys[layer], gathered.past, rows);
      this.copyRows(encoder, from.values[layer], from.past, gathered.values[layer], gathered.past, rows);
      if (gathered === to) continue;
      encoder.copyBufferToBuffer(gathered.keys[layer].buffer, 0, to.keys[layer].buffer, 0, to.keys[layer].byteSize);
      encoder.copyBufferToBuffer(gathered.values[layer].buffer, 0, to.values[layer].buffer, 0, to.values[layer].byteSize);
    }
    gpu.queue.submit([encoder.finish()]);
    if (gathered !== to) {
      await gpu.queue.onSubmittedWorkDone();
      for (const t of [...gathered.keys, ...gathered.values]) t.destroy();
    }
    this.lengths = lengths;
    this.moveTo(to);
  }

  free(): void {
    for (const e of this.executors.values()) e.executor.destroy();
    for (const l of this.layouts.values()) for (const t of [...l.keys, ...l.values]) t.destroy();
    this.executors.clear();
    this.layouts.clear();
    this.current = undefined;
    this.lengths = [];
  }

  // The cache now lives in `layout`: the buffers of other layouts and the executors bound to them
  // are freed, so a session holds one bucket's cache at a time.
  private moveTo(layout: Layout): void {
    this.current = layout;
    for (const [g, e] of this.executors) {
      if (e.layout === layout) continue;
      e.executor.destroy();
      this.executors.delete(g);
    }
    for (const [key, l] of this.layouts) {
      if (l === layout) continue;
      for (const t of [...l.keys, ...l.values]) t.destroy();
      this.layouts.delete(key);
    }
  }

  private bucketed(length: number): number {
    return Math.ceil(length / this.programs.bucket) * this.programs.bucket;
  }

  // One executor per step graph, its past inputs bound to the layout it reads.
  private executor(g: Graph, feeds: ReadonlyMap<string, Float64Array>, layout: Layout): GraphExecutor {
    const kept = this.executors.get(g);
    if (kept) return kept.executor;
    const bound = new Map(this.programs.weights(g, feeds));
    for (let layer = 0; layer < this.dims.layers; layer++) {
      bound.set(CACHE.pastKey(layer), layout.keys[layer]);
      bound.set(CACHE.pastValue(layer), layout.values[layer]);
    }
    const created = GraphExecutor.create(this.programs.gpu, this.programs.schedule(g), bound, { nf4: this.programs.nf4() });
    invariant(created.ok, `preparing a generation step: ${created.ok ? "" : created.diagnostics.map((d) => d.message).join("; ")}`);
    this.executors.set(g, { executor: created.value, layout });
    return created.value;
  }

  private layout(batch: number, past: number): Layout {
    const key = `${batch},${past}`;
    let layout = this.layouts.get(key);
    if (!layout) {
      layout = this.newLayout(batch, past, "kv cache");
      this.layouts.set(key, layout);
    }
    return layout;
  }

  private newLayout(batch: number, past: number, label: string): Layout {
    const make = (kind: string) => Array.from({ length: this.dims.layers }, (_, l) => createTensor(this.programs.gpu, "f32", [batch, past, this.dims.width], `${label} ${kind}.${l}`));
    return { batch, past, keys: make("keys"), values: make("values") };
  }

  /** Copies the last `n` positions of row `from` of `src` (B, S, width) to the end of row `to` of `dst` (B', S', width). */
  private copyRows(encoder: GPUCommandEncoder, src: GpuTensor, S: number, dst: GpuTensor, dstS: number, rows: readonly { from: number; to: number; n: number }[]): void {
    invariant(src.dtype === dst.dtype, `cache copy ${src.label} -> ${dst.label}: dtypes differ`);
    const bytes = this.dims.width * bytesPerElement(src.dtype);
    for (const { from, to, n } of rows) {
      invariant(n <= S && n <= dstS, `cache copy of ${n} positions from ${S} into ${dstS}`);
      encoder.copyBufferToBuffer(src.buffer, ((from + 1) * S - n) * bytes, dst.buffer, ((to + 1) * dstS - n) * bytes, n * bytes);
    }
  }
}
