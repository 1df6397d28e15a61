// Records many kernel dispatches into one command encoder and submits them together.
// Uniforms of all dispatches share arena buffers (one slot each); with `timestamps` every
// dispatch gets its own compute pass bracketed by GPU timestamps, or, between beginTimedGroup and
// endTimedGroup, the group's dispatches share one timed pass (one timing for them all).
import { invariant } from "../../compiler/diagnostics.ts";
import { packUniforms, uniformBytes, UNIFORM_ARENA_BYTES as ARENA_BYTES, type KernelSpec, type UniformValues } from "../../stdlib/kernels/kernel.ts";
import type { GpuDevice } from "./device.ts";
import { pipelinesOf, type CompiledKernel } from "./pipelines.ts";
import type { GpuTensor } from "./tensor.ts";

const MAX_TIMED_DISPATCHES = 256; // per query set; the batch flushes when it fills

/** GPU time of one dispatch. */
export interface KernelTiming {
  name: string;
  key: string;
  ns: number;
}

interface UniformArena {
  buffer: GPUBuffer;
  host: ArrayBuffer;
  used: number;
}

export interface BatchOptions {
  /** Time every dispatch with GPU timestamps (ignored when the device lacks timestamp-query). */
  timestamps?: boolean;
}

/** Bytes of a copy: from `srcOffset` of the source tensor to `dstOffset` of the destination (from each tensor's start). */
export interface CopyRange {
  srcOffset: number;
  dstOffset: number;
  bytes: number;
}

/** A sequence of dispatches and copies, submitted in one go by `submit()`. */
export class CommandBatch {
  private encoder: GPUCommandEncoder;
  private pass: GPUComputePassEncoder | undefined;
  /** The timed pass of the open group (beginTimedGroup). */
  private group: GPUComputePassEncoder | undefined;
  private arenas: UniformArena[] = [];
  private readonly timed: boolean;
  private querySet: GPUQuerySet | undefined;
  private timedKernels: { name: string; key: string }[] = [];
  private pendingTimings: Promise<KernelTiming[]>[] = [];
  private recorded = 0;
  /** The pipeline the open untimed pass last set: a dispatch of the same kernel right after does not set it again. */
  private pipeline: GPUComputePipeline | undefined;

  constructor(
    private readonly gpu: GpuDevice,
    options: BatchOptions = {},
  ) {
    this.timed = !!options.timestamps && gpu.hasTimestamps;
    this.encoder = gpu.device.createCommandEncoder();
  }

  /** Number of dispatches recorded since creation. */
  get dispatchCount(): number {
    return this.recorded;
  }

  /** Records `spec` over `tensors` (one per binding, by name) with the given uniforms. */
  dispatch(spec: KernelSpec, uniforms: UniformValues, tensors: Readonly<Record<string, GpuTensor>>): void {
    const size = uniformBytes(spec);
    const { arena, offset } = this.uniformSlot(size);
    packUniforms(spec, uniforms, new DataView(arena.host), offset);
    const compiled = pipelinesOf(this.gpu).get(spec);
    this.dispatchBound(spec, compiled, bindGroupFor(this.gpu, spec, compiled, { buffer: arena.buffer, offset, size }, tensors), spec.dispatch(uniforms));
  }

  /**
   * Records `spec`, compiled as `compiled`, with a bind group made beforehand by bindGroupFor,
   * whose uniforms the caller keeps in place until the batch has run, over `grid` workgroups.
   */
  dispatchBound(spec: KernelSpec, compiled: CompiledKernel, bindGroup: GPUBindGroup, grid: readonly [number, number, number]): void {
    const [x, y, z] = grid;
    const limit = this.gpu.limits.maxComputeWorkgroupsPerDimension;
    invariant(x <= limit && y <= limit && z <= limit, `${spec.name}: grid [${x},${y},${z}] exceeds ${limit}`);
    this.recorded++;
    if (x === 0 || y === 0 || z === 0) return; // empty tensor: nothing to do
    const pass = this.group ?? (this.timed ? this.timedPass(spec.name, compiled.key) : (this.pass ??= this.encoder.beginComputePass()));
    // an untimed batch records into one pass until a copy or flush ends it (endPass forgets the
    // pipeline); a timed dispatch has a pass of its own (timed groups exist only when timed)
    if (this.timed || this.pipeline !== compiled.pipeline) pass.setPipeline(compiled.pipeline);
    if (!this.timed) this.pipeline = compiled.pipeline;
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    if (this.timed && !this.group) pass.end();
  }

  /**
   * Until endTimedGroup, dispatches go into one pass timed as a whole, named `name` in the
   * timings (as the engine runs them: one pass, the barriers between them included). Without
   * timing, dispatches are recorded as usual.
   */
  beginTimedGroup(name: string): void {
    invariant(!this.group, "timed groups do not nest");
    if (!this.timed) return;
    this.endPass();
    this.group = this.timedPass(name, name);
  }

  endTimedGroup(): void {
    this.group?.end();
    this.group = undefined;
  }

  /** Records a copy of one tensor's bytes into another's (same byte size), or of `range` only. */
  copy(src: GpuTensor, dst: GpuTensor, range?: CopyRange): void {
    invariant(!this.group, "a copy inside a timed group");
    const { srcOffset, dstOffset, bytes } = range ?? { srcOffset: 0, dstOffset: 0, bytes: src.byteSize };
    if (range) invariant(srcOffset + bytes <= src.byteSize && dstOffset + bytes <= dst.byteSize, `copy ${src.label} -> ${dst.label}: ${bytes} bytes from ${srcOffset} to ${dstOffset} pass a tensor's end`);
    else invariant(src.byteSize === dst.byteSize, `copy ${src.label} -> ${dst.label}: sizes differ`);
    this.endPass();
    this.encoder.copyBufferToBuffer(src.buffer, src.byteOffset + srcOffset, dst.buffer, dst.byteOffset + dstOffset, bytes);
  }

  /** Submits what was recorded so far and starts a new encoder; the batch stays usable. */
  flush(): void {
    invariant(!this.group, "a timed group is still open");
    this.endPass();
    for (const a of this.arenas) this.gpu.queue.writeBuffer(a.buffer, 0, a.host, 0, a.used);
    const timings = this.querySet && this.timedKernels.length ? this.recordTimingReadback(this.querySet, this.timedKernels) : undefined;
    this.gpu.queue.submit([this.encoder.finish()]);
    if (timings) this.pendingTimings.push(timings());
    for (const a of this.arenas) a.buffer.destroy(); // freed once the submitted work completes
    this.arenas = [];
    this.querySet = undefined;
    this.timedKernels = [];
    this.encoder = this.gpu.device.createCommandEncoder();
  }

  /** Submits everything and waits for the GPU; returns per-dispatch timings when timing is on. */
  async submit(): Promise<KernelTiming[]> {
    this.flush();
    await this.gpu.queue.onSubmittedWorkDone();
    const timings = (await Promise.all(this.pendingTimings)).flat();
    this.pendingTimings = [];
    return timings;
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = undefined;
    this.pipeline = undefined;
  }

  private uniformSlot(size: number): { arena: UniformArena; offset: number } {
    const align = this.gpu.limits.minUniformBufferOffsetAlignment;
    let arena = this.arenas[this.arenas.length - 1];
    const offset = arena ? Math.ceil(arena.used / align) * align : 0;
    if (!arena || offset + size > ARENA_BYTES) {
      const buffer = this.gpu.device.createBuffer({ size: ARENA_BYTES, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
      arena = { buffer, host: new ArrayBuffer(ARENA_BYTES), used: 0 };
      this.arenas.push(arena);
      arena.used = size;
      return { arena, offset: 0 };
    }
    arena.used = offset + size;
    return { arena, offset };
  }

  private timedPass(name: string, key: string): GPUComputePassEncoder {
    if (this.timedKernels.length === MAX_TIMED_DISPATCHES) this.flush();
    this.querySet ??= this.gpu.device.createQuerySet({ type: "timestamp", count: 2 * MAX_TIMED_DISPATCHES });
    const i = this.timedKernels.length;
    this.timedKernels.push({ name, key });
    return this.encoder.beginComputePass({
      timestampWrites: { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 },
    });
  }

  // Resolves the timestamps into a mappable buffer inside this encoder; the returned function
  // (called after submit) maps it and pairs the begin/end stamps.
  private recordTimingReadback(querySet: GPUQuerySet, kernels: { name: string; key: string }[]): () => Promise<KernelTiming[]> {
    const bytes = 16 * kernels.length;
    const resolved = this.gpu.device.createBuffer({ size: bytes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const staging = this.gpu.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.encoder.resolveQuerySet(querySet, 0, 2 * kernels.length, resolved, 0);
    this.encoder.copyBufferToBuffer(resolved, 0, staging, 0, bytes);
    return async () => {
      await staging.mapAsync(GPUMapMode.READ);
      const stamps = new BigUint64Array(staging.getMappedRange().slice(0));
      staging.unmap();
      for (const b of [staging, resolved]) b.destroy();
      querySet.destroy();
      return kernels.map((k, i) => ({ ...k, ns: Number(stamps[2 * i + 1] - stamps[2 * i]) }));
    };
  }
}

/** A uniform block of `size` bytes at `offset` in `buffer`. */
export interface UniformSlice {
  buffer: GPUBuffer;
  offset: number;
  size: number;
}

/** The bind group of `spec` (compiled as `compiled`): binding 0 the uniforms, then `tensors` by binding name. */
export function bindGroupFor(gpu: GpuDevice, spec: KernelSpec, compiled: CompiledKernel, uniforms: UniformSlice, tensors: Readonly<Record<string, GpuTensor>>): GPUBindGroup {
  const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: uniforms }];
  spec.bindings.forEach((b, i) => {
    const t = tensors[b.name];
    invariant(t !== undefined, `${spec.name}: no tensor for binding '${b.name}'`);
    invariant(t.dtype === b.dtype, `${spec.name}: binding '${b.name}' wants ${b.dtype}, got ${t.label} (${t.dtype})`);
    entries.push({ binding: i + 1, resource: t.isRange ? { buffer: t.buffer, offset: t.byteOffset, size: t.byteSize } : { buffer: t.buffer } });
  });
  return gpu.device.createBindGroup({ layout: compiled.layout, entries });
}

/** Runs one kernel to completion: the simplest way to call a kernel (tests, one-off work). */
export async function runKernel(
  gpu: GpuDevice,
  spec: KernelSpec,
  uniforms: UniformValues,
  tensors: Readonly<Record<string, GpuTensor>>,
): Promise<void> {
  const batch = new CommandBatch(gpu);
  batch.dispatch(spec, uniforms, tensors);
  await batch.submit();
}
