// Generation steps on the GPU: each cached step graph (compiler/models/cached-graph.ts) compiled by the compiler's
// passes and run by the WebGPU executor (runtime/execute), its fused kernels included. The weights
// are uploaded once, either streamed in before the first step (`load`, one tensor at a time) or
// on the first step that feeds them, and bound into every step's executor, each in its storage
// dtype (the linears, table and head in the model's 16-bit dtype, read widened by the kernels;
// a QLoRA pipeline's block linears as NF4, decoded inside the matmuls, as its training stores them); a
// step graph is compiled once per shape; each session's KV cache lives on the device
// (device-cache.ts), its length in buckets, so decoding compiles once per bucket.
import { invariant, ok, type Result } from "../../compiler/diagnostics.ts";
import { numel, topoSort, type DType, type Graph, type Node } from "../../compiler/ir/node.ts";
import { CACHE_BUCKET, copiedOutputs, type CacheDType } from "../../compiler/models/cached-graph.ts";
import { compileGraph, type Compiled } from "../../compiler/passes/compile.ts";
import type { StorageDType } from "../../stdlib/kernels/dtype.ts";
import { nf4Buffers, uploadNf4Buffers, uploadNf4Tables, type Nf4Buffers } from "../execute/nf4-weights.ts";
import type { GpuDevice } from "../gpu/device.ts";
import { uploadTensor, type GpuTensor } from "../gpu/tensor.ts";
import type { StepRunner } from "./cached-model.ts";
import { DeviceKvCache, type StepProfile, type StepPrograms } from "./device-cache.ts";
import type { StreamedTensor } from "./weights.ts";

/** What a GPU step runner has done so far: compiles, and bytes written from the host by kind. */
export interface GpuRunnerStats {
  compiles: number;
  weightBytes: number;
  /** Ids, positions, key ranges: what each step writes. */
  inputBytes: number;
}

/** A step runner on `gpu`, with its counters. */
export interface GpuStepRunner extends StepRunner {
  readonly stats: GpuRunnerStats;
  /** Switch on to time every dispatch of the following steps (a profile; see StepProfile). */
  readonly profile: StepProfile;
  /**
   * Uploads each tensor of `tensors` as it arrives, in its storage dtype (f32 unless the options'
   * weightDtypes name it, NF4 where their nf4 does), holding none on the host; steps then bind
   * these and need no weight among their feeds. Stops at the first failure.
   */
  load(tensors: AsyncIterable<Result<StreamedTensor>>): Promise<Result<void>>;
  /** Frees the weights. */
  destroy(): void;
}

export interface GpuRunnerOptions {
  /** Cache lengths are rounded up to multiples of this (one decode executor per bucket). */
  bucket?: number;
  /** Weights stored narrower than f32, by graph name (generationWeightDtypes); the rest are f32. */
  weightDtypes?: ReadonlyMap<string, DType>;
  /** Weights stored as NF4 (a QLoRA pipeline's block linears), quantized as they are uploaded. */
  nf4?: readonly string[];
  /** The KV cache's dtype (kvCacheDtype; default f32): f16 needs the device's shader-f16. */
  cacheDtype?: CacheDType;
}

/** A step runner on `gpu`; GPU errors after a step are internal failures. */
export function gpuRunner(gpu: GpuDevice, options: GpuRunnerOptions = {}): GpuStepRunner {
  const cacheDtype = options.cacheDtype ?? "f32";
  invariant(cacheDtype === "f32" || gpu.hasF16, "an f16 KV cache needs the device's shader-f16");
  const weights = new Map<string, { source: Float64Array; tensor: GpuTensor }>();
  // weights streamed in by `load`, by graph name
  const resident = new Map<string, GpuTensor>();
  // NF4 weights, from `load` or quantized when first fed, and the lookup tables of their matmuls
  const nf4Names = new Set(options.nf4 ?? []);
  // (source: the fed array it came from; none when streamed in by `load`, which wins over feeds)
  const quantized = new Map<string, { source?: Float64Array; numel: number; buffers: Nf4Buffers }>();
  let tables: GpuTensor | undefined;
  const uploadNf4 = (name: string, values: ArrayLike<number>, source?: Float64Array) => {
    const held = quantized.get(name);
    if (held) for (const t of nf4Buffers(held.buffers)) t.destroy();
    const buffers = uploadNf4Buffers(gpu, values, name);
    quantized.set(name, { source, numel: values.length, buffers });
    stats.weightBytes += nf4Buffers(buffers).reduce((n, t) => n + t.byteSize, 0);
    tables ??= uploadNf4Tables(gpu);
  };
  const programsByLeaves = new Map<string, Compiled>();
  const stats: GpuRunnerStats = { compiles: 0, weightBytes: 0, inputBytes: 0 };
  const profile: StepProfile = { enabled: false, timings: [] };
  // a graph's leaves name its shape: graphs of one shape share a compiled schedule
  const leafNodes = new WeakMap<Graph, Node[]>();
  const leaves = (g: Graph): Node[] => {
    let found = leafNodes.get(g);
    if (!found) {
      found = topoSort(g.outputs.values()).filter((n) => n.op === "param" || n.op === "input");
      leafNodes.set(g, found);
    }
    return found;
  };

  const programs: StepPrograms = {
    gpu,
    profile,
    bucket: options.bucket ?? CACHE_BUCKET,
    cacheDtype,
    compiled(g) {
      const key = leaves(g).map((n) => `${n.attrs.name}:${n.shape.join("x")}`).join(",");
      let program = programsByLeaves.get(key);
      if (!program) {
        const compiled = compileGraph(g, { copiedOut: copiedOutputs(g) });
        invariant(compiled.ok, `compiling a generation step: ${compiled.ok ? "" : compiled.diagnostics.map((d) => d.message).join("; ")}`);
        program = compiled.value;
        programsByLeaves.set(key, program);
        stats.compiles++;
      }
      return program;
    },
    // parameters are device tensors, uploaded when first fed; a runner's weights never change
    // (kept executors bind their tensors), so a later feed must be the same array
    weights(g, feeds) {
      const bound = new Map<string, GpuTensor>();
      for (const n of leaves(g)) {
        if (n.op !== "param") continue;
        const name = n.attrs.name!;
        if (nf4Names.has(name)) {
          const values = feeds.get(name);
          let held = quantized.get(name);
          const streamed = held !== undefined && held.source === undefined;
          if (values && !held) {
            uploadNf4(name, values, values);
            held = quantized.get(name);
          }
          invariant(!values || streamed || held?.source === values, `generation step: the NF4 weight ${name} was fed a different array after its upload`);
          invariant(held?.numel === numel(n.shape), `generation step: the NF4 weight ${name} holds ${held?.numel ?? "no"} values, the step reads [${n.shape}]`);
          continue;
        }
        const loaded = resident.get(name);
        if (loaded) {
          invariant(n.dtype === loaded.dtype && loaded.shape.join("x") === n.shape.join("x"), `generation step: the loaded weight ${name} is ${loaded.dtype} [${loaded.shape}], the step reads ${n.dtype} [${n.shape}]`);
          bound.set(name, loaded);
          continue;
        }
        const values = feeds.get(name);
        invariant(values, `generation step: no weight ${name}`);
        let held = weights.get(name);
        if (!held) {
          held = { source: values, tensor: uploadTensor(gpu, n.dtype, n.shape, values, name) };
          weights.set(name, held);
          stats.weightBytes += held.tensor.byteSize;
        }
        invariant(held.source === values, `generation step: the weight ${name} was fed a different array after its upload`);
        bound.set(name, held.tensor);
      }
      return bound;
    },
    countInputBytes(bytes) {
      stats.inputBytes += bytes;
    },
    holds: (name) => resident.has(name) || weights.has(name) || quantized.has(name),
    nf4: () => (tables ? { weights: new Map([...quantized].map(([name, q]) => [name, q.buffers])), tables } : undefined),
  };

  const weightDtypes = options.weightDtypes ?? new Map<string, DType>();
  const narrow = new Set(weightDtypes.values());
  const stored = nf4Names.size > 0 ? `weights (NF4 block linears${narrow.size > 0 ? `, ${[...narrow].join(", ")} table and head` : ""})` : narrow.size === 0 ? "weights" : `weights (${[...narrow].join(", ")} linears, table and head)`;
  return {
    backend: `GPU (${gpu.adapter.name}; ${stored} and ${cacheDtype} KV cache on the device)`,
    weightDtypes,
    cacheDtype,
    stats,
    profile,
    openCache: (dims) => new DeviceKvCache(programs, dims),
    async load(tensors) {
      for await (const tensor of tensors) {
        if (!tensor.ok) return tensor;
        const { name, shape, values } = tensor.value;
        if (nf4Names.has(name)) {
          uploadNf4(name, values);
          continue;
        }
        resident.get(name)?.destroy();
        const uploaded = uploadTensor(gpu, (weightDtypes.get(name) ?? "f32") as StorageDType, shape, values, name);
        resident.set(name, uploaded);
        stats.weightBytes += uploaded.byteSize;
      }
      return ok(undefined);
    },
    destroy() {
      for (const w of weights.values()) w.tensor.destroy();
      for (const t of resident.values()) t.destroy();
      for (const q of quantized.values()) for (const t of nf4Buffers(q.buffers)) t.destroy();
      tables?.destroy();
      weights.clear();
      resident.clear();
      quantized.clear();
      tables = undefined;
    },
  };
}
