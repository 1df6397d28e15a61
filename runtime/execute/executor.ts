// Runs a compiled schedule on the GPU: one buffer per materialized node, each launch turned
// into a kernel dispatch (generated kernels from compiler/codegen, library kernels through
// their bindings), all launches of a step recorded into one command batch.
import { diag, fail, ok, type Result } from "../../compiler/diagnostics.ts";
import { fusedKernel } from "../../compiler/codegen/fused-kernel.ts";
import { gather } from "../../compiler/ir/interpret.ts";
import { numel, type Node } from "../../compiler/ir/node.ts";
import type { Launch, Schedule } from "../../compiler/passes/schedule.ts";
import { kernelKey, type KernelSpec, type UniformValues } from "../../stdlib/kernels/kernel.ts";
import { CommandBatch } from "../gpu/batch.ts";
import type { GpuDevice } from "../gpu/device.ts";
import { createTensor, readFloats, writeTensor, type GpuTensor } from "../gpu/tensor.ts";

interface Dispatch {
  spec: KernelSpec;
  uniforms: UniformValues;
  tensors: Record<string, GpuTensor>;
}

export class GraphExecutor {
  private readonly buffers = new Map<Node, GpuTensor>();
  private readonly leaves = new Map<string, Node>();
  private readonly dispatches: Dispatch[] = [];

  private constructor(
    private readonly gpu: GpuDevice,
    private readonly schedule: Schedule,
  ) {}

  /** Allocates every buffer and prepares every dispatch; a launch with no kernel is an error. */
  static create(gpu: GpuDevice, schedule: Schedule): Result<GraphExecutor> {
    const ex = new GraphExecutor(gpu, schedule);
    for (const launch of schedule.launches) {
      for (const { view } of launch.inputs) ex.bufferOf(view.base);
      for (const out of launch.outputs) ex.bufferOf(out);
    }
    for (const [, view] of schedule.outputViews) ex.bufferOf(view.base);
    for (const launch of schedule.launches) {
      const d = ex.prepare(launch);
      if (!d.ok) return fail(...d.diagnostics);
      ex.dispatches.push(d.value);
    }
    return ok(ex);
  }

  private bufferOf(n: Node): GpuTensor {
    let t = this.buffers.get(n);
    if (!t) {
      t = createTensor(this.gpu, n.dtype, n.shape.length ? n.shape : [1], n.attrs.name ?? `%${n.id} ${n.op}`);
      this.buffers.set(n, t);
      if (n.op === "param" || n.op === "input") this.leaves.set(n.attrs.name!, n);
      if (n.op === "const") writeTensor(this.gpu, t, new Float32Array(Math.max(1, numel(n.shape))).fill(n.attrs.value!));
    }
    return t;
  }

  private prepare(launch: Launch): Result<Dispatch> {
    if (launch.kernel === "elementwise" || launch.kernel === "reduce") {
      const k = fusedKernel(launch);
      const tensors: Record<string, GpuTensor> = { [k.output.binding]: this.bufferOf(k.output.node) };
      for (const { binding, view } of k.inputs) tensors[binding] = this.bufferOf(view.base);
      return ok({ spec: k.spec, uniforms: k.uniforms, tensors });
    }
    return fail(diag("SFT4005", `the runtime cannot execute ${launch.kernel} launches yet`, { where: launch.launches.join(", ") }));
  }

  /** Writes a parameter's or an input's values (by name). */
  write(name: string, values: ArrayLike<number>): void {
    const n = this.leaves.get(name);
    if (n) writeTensor(this.gpu, this.buffers.get(n)!, values);
  }

  /** Records every launch into one batch and waits for the GPU. */
  async run(): Promise<void> {
    const batch = new CommandBatch(this.gpu);
    for (const d of this.dispatches) batch.dispatch(d.spec, d.uniforms, d.tensors);
    await batch.submit();
  }

  /** A graph output, gathered through its view into a contiguous array. */
  async read(name: string): Promise<Float64Array> {
    const view = this.schedule.outputViews.get(name);
    if (!view) throw new Error(`sftc internal error: no graph output ${name}`);
    const data = await readFloats(this.gpu, this.buffers.get(view.base)!);
    return gather(Float64Array.from(data), view.shape, view.strides, view.offset);
  }

  /** The pipeline cache key of every dispatch, in order. */
  kernelKeys(): string[] {
    return this.dispatches.map((d) => kernelKey(d.spec));
  }

  destroy(): void {
    for (const t of this.buffers.values()) t.destroy();
  }
}
