// The initial weights of the GPU training engine (gpu-backend.ts) on their way to the device:
// which parameters the engine stores (trainable ones f32, none of them NF4), the checks on each
// weight given, and the placement one tensor at a time, f32 or quantized to NF4 for the frozen
// base weights QLoRA names, freeing what was placed when a later weight fails. The engine
// (GpuBackend.create and .load) then only assembles weights already placed.
import { diag, fail, invariant, ok, type Diagnostic, type Result } from "../../compiler/diagnostics.ts";
import { numel, topoSort, type Node } from "../../compiler/ir/node.ts";
import { nf4Buffers, uploadNf4Tensor, type Nf4Weight } from "../execute/nf4-weights.ts";
import type { GpuDevice } from "../gpu/device.ts";
import { createTensor, writeTensor, type GpuTensor } from "../gpu/tensor.ts";
import { quantizeNf4, type Nf4Tensor } from "../../stdlib/quant/nf4.ts";
import { SEQ_BUCKET } from "./batch-padding.ts";
import type { GraphModel } from "./cpu-backend.ts";

/** Initial weights by name, one tensor at a time (a checkpoint read as it streams). */
export type WeightSource = AsyncIterable<Result<{ name: string; values: ArrayLike<number> }>>;

/** The parameters the engine stores, once the trainable ones are known to be f32 and none of them among `nf4` (the weights QLoRA stores as NF4). */
export function engineParams(model: GraphModel, nf4: readonly string[] = []): Result<Node[]> {
  const params = topoSort([model.lossFor(1, SEQ_BUCKET)]).filter((n) => n.op === "param");
  const stored = new Map(params.map((p) => [p.attrs.name!, p.dtype]));
  const narrow = model.trainable.find((t) => stored.get(t.name) !== "f32");
  if (narrow) {
    return fail(diag("SFT5901", `The trainable weight '${narrow.name}' is stored as ${stored.get(narrow.name)}; the GPU engine trains f32 weights (AdamW updates need them).`, { where: narrow.name, hint: "Set model.dtype = f32 for full fine-tuning, or train LoRA adapters over the narrow base weights." }));
  }
  const quantized = new Set(nf4);
  const trainedNf4 = model.trainable.find((t) => quantized.has(t.name));
  invariant(!trainedNf4, `the NF4 weight ${trainedNf4?.name} is frozen: QLoRA trains adapters over it`);
  return ok(params);
}

/** SFT4002: initial weight `p` is missing (`given` undefined) or has `given` values instead of its size. */
export function weightSizeError(p: Node, given: number | undefined): Diagnostic {
  const problem = given !== undefined ? `has ${given} values, expected ${numel(p.shape)}` : "is missing";
  return diag("SFT4002", `The initial weight '${p.attrs.name}' ${problem}.`, { where: p.attrs.name, hint: `Give a value for every parameter, shape [${p.shape}].` });
}

/** Weights placed on the device one at a time, then handed to a new engine (or freed on a failure). */
export class DeviceWeights {
  private readonly quantized: Set<string>;
  readonly nf4 = new Map<string, Nf4Weight>();
  readonly uploaded = new Map<string, GpuTensor>();
  private readonly quantizedFrom = new WeakMap<ArrayLike<number>, Nf4Tensor>();

  constructor(
    readonly gpu: GpuDevice,
    nf4: readonly string[] = [],
  ) {
    this.quantized = new Set(nf4);
  }

  has(p: Node): boolean {
    return this.uploaded.has(p.attrs.name!) || this.nf4.has(p.attrs.name!);
  }

  place(p: Node, values: ArrayLike<number>): void {
    const name = p.attrs.name!;
    if (this.quantized.has(name)) {
      // one source array given for several weights (tied, or a benchmark's shared random values) is quantized once
      let host = this.quantizedFrom.get(values);
      if (!host) this.quantizedFrom.set(values, (host = quantizeNf4(Float32Array.from(values))));
      this.nf4.set(name, uploadNf4Tensor(this.gpu, host, name));
      return;
    }
    const t = createTensor(this.gpu, p.dtype, p.shape, name);
    writeTensor(this.gpu, t, values);
    this.uploaded.set(name, t);
  }

  abandon<T>(diagnostics: Diagnostic[]): Result<T> {
    for (const t of [...this.uploaded.values(), ...[...this.nf4.values()].flatMap(nf4Buffers)]) t.destroy();
    return fail(...diagnostics);
  }
}
