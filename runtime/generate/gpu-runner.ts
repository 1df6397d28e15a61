// Generation steps on the GPU: each cached step graph (cached-graph.ts) compiled by the compiler's
// passes and run by the WebGPU executor (runtime/execute), its fused kernels included. This is the
// first GPU path, not the final one: an executor is built per step shape (the past length grows
// every step) and the weights and the KV cache travel from the host each step, where a
// device-resident cache and decode kernels with shapes in uniforms will keep them on the GPU.
import { invariant } from "../../compiler/diagnostics.ts";
import type { Graph } from "../../compiler/ir/node.ts";
import { compileGraph } from "../../compiler/passes/compile.ts";
import { GraphExecutor } from "../execute/executor.ts";
import type { GpuDevice } from "../gpu/device.ts";
import type { StepRunner } from "./cached-model.ts";

/** A step runner on `gpu`; GPU errors after a step are internal failures. */
export function gpuRunner(gpu: GpuDevice): StepRunner {
  return {
    backend: `GPU (${gpu.adapter.name}; KV cache on the host, one executor per step shape)`,
    async run(g: Graph, feeds: ReadonlyMap<string, Float64Array>): Promise<Map<string, Float64Array>> {
      const compiled = compileGraph(g);
      invariant(compiled.ok, `compiling a generation step: ${compiled.ok ? "" : compiled.diagnostics.map((d) => d.message).join("; ")}`);
      const executor = GraphExecutor.create(gpu, compiled.value.schedule);
      invariant(executor.ok, `preparing a generation step: ${executor.ok ? "" : executor.diagnostics.map((d) => d.message).join("; ")}`);
      try {
        for (const [name, values] of feeds) executor.value.write(name, values);
        const ran = await executor.value.run();
        invariant(ran.ok, `running a generation step: ${ran.ok ? "" : ran.diagnostics.map((d) => d.message).join("; ")}`);
        const outputs = new Map<string, Float64Array>();
        for (const name of g.outputs.keys()) outputs.set(name, await executor.value.read(name));
        const errors = await gpu.takeErrors();
        invariant(errors.length === 0, `GPU errors in a generation step: ${errors.map((e) => e.message).join("; ")}`);
        return outputs;
      } finally {
        executor.value.destroy();
      }
    },
  };
}
