// Steps (kernel dispatches and buffer copies) made ready to record again and again, as the graph
// executor, the decode cache, the device's probes and tunings and the bench run them: the uniforms
// of every dispatch in one device buffer, and per dispatch its compiled pipeline and a bind group,
// made at the first run and kept. A run only records them. After a refresh (which may change
// uniforms and swap tensors: runtime/execute/steps.ts) `update` packs the uniforms of the steps it
// names again, writes the buffer when they changed, and remakes the bind groups whose tensors
// were swapped: a decode step refreshes its attention and RoPE launches, not its matmuls.
//
// Why: Dawn makes a bind group in about 20 us (lavapipe, timed by wrapping createBindGroup), and
// a batch that made one per dispatch made 29 for each decode step of the quickstart model and 419
// for a 7B one. Keeping them took the quickstart decode step from 3.9 to 3.3 ms median on
// lavapipe (300 steps, three runs each way), measured by hand before `update` replaced the
// per-run repacking; no script in the repository repeats it.
import { packUniforms, uniformBytes, type Grid, type KernelSpec } from "../../stdlib/kernels/kernel.ts";
import { bindGroupFor, type CommandBatch, type CopyRange } from "./batch.ts";
import type { GpuDevice } from "./device.ts";
import { pipelinesOf, type CompiledKernel } from "./pipelines.ts";
import type { GpuTensor } from "./tensor.ts";

/** One kernel dispatch; a refresh may change its uniforms and swap its tensors. */
export interface DispatchStep {
  kind: "dispatch";
  spec: KernelSpec;
  uniforms: Record<string, number>;
  tensors: Record<string, GpuTensor>;
  /** A copy of a view the launch's kernel cannot read (counted apart). */
  copy?: boolean;
}

/**
 * A copy of one tensor's bytes into another's of one size, in two different buffers (no kernel),
 * or of the byte `range` only (offsets from each tensor's start).
 */
export interface CopyStep {
  kind: "copy";
  src: GpuTensor;
  dst: GpuTensor;
  range?: CopyRange;
}

export type Step = DispatchStep | CopyStep;

/** A dispatch with its place in the uniform buffer, its pipeline and the bind group over its current tensors. */
interface BoundDispatch {
  step: DispatchStep;
  offset: number;
  size: number;
  compiled: CompiledKernel;
  /** Workgroups, from the uniforms (recomputed by `update`). */
  grid: Grid;
  /** The tensors' ranges the bind group holds, in binding order. */
  ranges: BoundRange[];
  bindGroup: GPUBindGroup;
}

export class BoundSteps {
  private readonly uniforms: GPUBuffer | undefined;
  private readonly host: ArrayBuffer;
  /** The words last written to `uniforms` (every slot is a multiple of 16 bytes). */
  private readonly written: Uint32Array;
  private readonly bound = new Map<DispatchStep, BoundDispatch>();

  constructor(
    private readonly gpu: GpuDevice,
    private readonly steps: readonly Step[],
  ) {
    const align = gpu.limits.minUniformBufferOffsetAlignment;
    let end = 0;
    const places: { step: DispatchStep; offset: number; size: number }[] = [];
    for (const step of steps) {
      if (step.kind !== "dispatch") continue;
      const offset = Math.ceil(end / align) * align;
      places.push({ step, offset, size: uniformBytes(step.spec) });
      end = offset + uniformBytes(step.spec);
    }
    this.host = new ArrayBuffer(end);
    this.written = new Uint32Array(end / 4);
    this.uniforms = end > 0 ? gpu.device.createBuffer({ label: "step uniforms", size: end, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST }) : undefined;
    for (const p of places) {
      const compiled = pipelinesOf(gpu).get(p.step.spec);
      this.bound.set(p.step, { ...p, compiled, grid: p.step.spec.dispatch(p.step.uniforms), ...this.bindGroup(p.step, compiled, p.offset, p.size) });
    }
    this.writeUniforms(true);
  }

  /** Takes in what a refresh changed: the uniforms of `steps` (default every step) and the tensors they hold now. */
  update(steps: Iterable<DispatchStep> = this.bound.keys()): void {
    const changed = [...steps].map((s) => this.bound.get(s)!);
    this.writeUniforms(false, changed);
    for (const b of changed) {
      b.grid = b.step.spec.dispatch(b.step.uniforms);
      if (!sameRanges(b.ranges, rangesOf(b.step))) Object.assign(b, this.bindGroup(b.step, b.compiled, b.offset, b.size));
    }
  }

  /**
   * Records every step into `batch`, submitting what it holds after every `submitEvery`
   * dispatches (none: all at the batch's own flush), so the device starts on the first launches
   * while the host records the rest.
   */
  record(batch: CommandBatch, submitEvery?: number): void {
    let dispatched = 0;
    this.steps.forEach((s, i) => {
      if (s.kind === "copy") {
        batch.copy(s.src, s.dst, s.range);
        return;
      }
      const b = this.bound.get(s)!;
      batch.dispatchBound(s.spec, b.compiled, b.bindGroup, b.grid);
      // the last piece is left to the batch's own flush: no empty submission after it
      if (submitEvery && ++dispatched % submitEvery === 0 && i < this.steps.length - 1) batch.flush();
    });
  }

  destroy(): void {
    this.uniforms?.destroy();
  }

  // Packs the uniforms of `dispatches` (default all) and writes the buffer when their slots differ
  // from the last write (or `always`); the write is queued before the batch's commands and after
  // earlier submissions'.
  private writeUniforms(always: boolean, dispatches: Iterable<BoundDispatch> = this.bound.values()): void {
    if (!this.uniforms) return;
    const view = new DataView(this.host);
    const words = new Uint32Array(this.host);
    let changed = always;
    for (const b of dispatches) {
      packUniforms(b.step.spec, b.step.uniforms, view, b.offset);
      for (let i = b.offset / 4; i < (b.offset + b.size) / 4 && !changed; i++) changed = words[i] !== this.written[i];
    }
    if (!changed) return;
    this.gpu.queue.writeBuffer(this.uniforms, 0, this.host);
    this.written.set(words);
  }

  private bindGroup(s: DispatchStep, compiled: CompiledKernel, offset: number, size: number): { ranges: BoundRange[]; bindGroup: GPUBindGroup } {
    return { ranges: rangesOf(s), bindGroup: bindGroupFor(this.gpu, s.spec, compiled, { buffer: this.uniforms!, offset, size }, s.tensors) };
  }
}

/** A range of a buffer that a dispatch binds. */
interface BoundRange {
  buffer: GPUBuffer | undefined;
  offset: number;
  size: number;
}

// The ranges a dispatch binds, in binding order.
function rangesOf(s: DispatchStep): BoundRange[] {
  return s.spec.bindings.map((b) => {
    const t = s.tensors[b.name];
    return { buffer: t?.buffer, offset: t?.byteOffset ?? 0, size: t?.byteSize ?? 0 };
  });
}

function sameRanges(a: readonly BoundRange[], b: readonly BoundRange[]): boolean {
  return a.length === b.length && a.every((x, i) => x.buffer === b[i].buffer && x.offset === b[i].offset && x.size === b[i].size);
}
