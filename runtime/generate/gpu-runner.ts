// Generation steps on the GPU: each cached step graph (cached-graph.ts) compiled by the compiler's
// passes and run by the WebGPU executor (runtime/execute), its fused kernels included. The weights
// are uploaded once, on the first step that feeds them, and bound into every step's executor; an
// executor is compiled once per step shape (batch, past, fresh) and kept for the next step of that
// shape. The KV cache still travels from the host each step, as the step graph's inputs.
import { invariant } from "../../compiler/diagnostics.ts";
import type { Graph, Node } from "../../compiler/ir/node.ts";
import { topoSort } from "../../compiler/ir/node.ts";
import { compileGraph } from "../../compiler/passes/compile.ts";
import { GraphExecutor } from "../execute/executor.ts";
import type { GpuDevice } from "../gpu/device.ts";
import { uploadTensor, type GpuTensor } from "../gpu/tensor.ts";
import type { StepRunner } from "./cached-model.ts";

/** Executors kept for reuse: the least recently used beyond these are freed. */
const KEPT_EXECUTORS = 8;

/** What a GPU step runner has done so far: compiles, and bytes written from the host by kind. */
export interface GpuRunnerStats {
  compiles: number;
  weightBytes: number;
  inputBytes: number;
}

/** A step runner on `gpu`, with its counters; GPU errors after a step are internal failures. */
export interface GpuStepRunner extends StepRunner {
  readonly stats: GpuRunnerStats;
  /** Frees the weights and every kept executor. */
  destroy(): void;
}

/** A step runner on `gpu`. */
export function gpuRunner(gpu: GpuDevice): GpuStepRunner {
  const weights = new Map<string, { source: Float64Array; tensor: GpuTensor }>();
  const executors = new Map<string, GraphExecutor>();
  const stats: GpuRunnerStats = { compiles: 0, weightBytes: 0, inputBytes: 0 };

  // Parameters are bound device tensors, uploaded when first fed (or fed a different array).
  const bindWeights = (leaves: readonly Node[], feeds: ReadonlyMap<string, Float64Array>): Map<string, GpuTensor> => {
    const bound = new Map<string, GpuTensor>();
    for (const n of leaves) {
      if (n.op !== "param") continue;
      const name = n.attrs.name!;
      const values = feeds.get(name);
      invariant(values, `generation step: no weight ${name}`);
      let held = weights.get(name);
      if (held?.source !== values) {
        held?.tensor.destroy();
        held = { source: values, tensor: uploadTensor(gpu, n.dtype, n.shape, values, name) };
        weights.set(name, held);
        stats.weightBytes += held.tensor.byteSize;
      }
      bound.set(name, held.tensor);
    }
    return bound;
  };

  const executorFor = (g: Graph, feeds: ReadonlyMap<string, Float64Array>): GraphExecutor => {
    const leaves = topoSort(g.outputs.values()).filter((n) => n.op === "param" || n.op === "input");
    const key = leaves.map((n) => `${n.attrs.name}:${n.shape.join("x")}`).join(",");
    const kept = executors.get(key);
    if (kept) {
      executors.delete(key); // most recently used last
      executors.set(key, kept);
      return kept;
    }
    const compiled = compileGraph(g);
    invariant(compiled.ok, `compiling a generation step: ${compiled.ok ? "" : compiled.diagnostics.map((d) => d.message).join("; ")}`);
    const created = GraphExecutor.create(gpu, compiled.value.schedule, bindWeights(leaves, feeds));
    invariant(created.ok, `preparing a generation step: ${created.ok ? "" : created.diagnostics.map((d) => d.message).join("; ")}`);
    stats.compiles++;
    executors.set(key, created.value);
    if (executors.size > KEPT_EXECUTORS) {
      const [oldest, executor] = executors.entries().next().value!;
      executor.destroy();
      executors.delete(oldest);
    }
    return created.value;
  };

  return {
    backend: `GPU (${gpu.adapter.name}; weights on the device, KV cache on the host)`,
    stats,
    async run(g: Graph, feeds: ReadonlyMap<string, Float64Array>): Promise<Map<string, Float64Array>> {
      const executor = executorFor(g, feeds);
      for (const [name, values] of feeds) {
        if (weights.has(name)) continue;
        executor.write(name, values);
        stats.inputBytes += 4 * values.length;
      }
      const ran = await executor.run();
      invariant(ran.ok, `running a generation step: ${ran.ok ? "" : ran.diagnostics.map((d) => d.message).join("; ")}`);
      const outputs = new Map<string, Float64Array>();
      for (const name of g.outputs.keys()) outputs.set(name, await executor.read(name));
      const errors = await gpu.takeErrors();
      invariant(errors.length === 0, `GPU errors in a generation step: ${errors.map((e) => e.message).join("; ")}`);
      return outputs;
    },
    destroy() {
      for (const e of executors.values()) e.destroy();
      for (const w of weights.values()) w.tensor.destroy();
      executors.clear();
      weights.clear();
    },
  };
}
