// The low-rank epilogue end to end: a LoRA linear (bias, adapter, then a residual) and its
// gradients, scheduled with the up-projection inside x Wᵀ's launch (and T'·A inside the input
// gradient's), run on the GPU against the float64 interpreter; then the same on a device that
// binds too few storage buffers for the fused kernel, where the executor runs the product and
// accumulates T·op(L) in a second dispatch.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { trainingGraph } from "../../compiler/autodiff/grad.ts";
import * as b from "../../compiler/ir/build.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import type { Graph } from "../../compiler/ir/node.ts";
import { linear } from "../../compiler/models/lora-linear.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { Random } from "../../runtime/random.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { assertClose } from "../support/numeric.ts";
import { expectOk } from "../support/result.ts";
import { runOnGpu } from "./support.ts";

// x (2, 24, 48) through W (40, 48) + bias with a rank-4 adapter, plus a residual r
function loraGraph(): { graph: Graph; feeds: Map<string, Float64Array> } {
  const x = b.param("x", [2, 24, 48]);
  const w = b.param("w", [40, 48]);
  const bias = b.param("bias", [40]);
  const a = b.param("lora_a", [4, 48]);
  const up = b.param("lora_b", [40, 4]);
  const r = b.input("r", [2, 24, 40]);
  const y = b.add(linear(x, w, bias, { a, b: up, scale: 0.5 }), r);
  const loss = b.reshape(b.sum(b.sum(b.sum(b.mul(y, y), 2), 1), 0), []);
  const t = expectOk(trainingGraph(loss, [x, a, up]));
  const rng = new Random(3);
  const feeds = new Map<string, Float64Array>();
  for (const n of [x, w, bias, a, up, r]) feeds.set(n.attrs.name!, Float64Array.from(rng.normalArray(n.shape.reduce((p, q) => p * q, 1), 0.3)));
  return { graph: t.graph, feeds };
}

// The GPU with a smaller storage-buffer limit, as some adapters report.
function fewBindings(gpu: GpuDevice, limit: number): GpuDevice {
  // a plain copy: the device's limits object only answers for itself
  const limits: Record<string, number> = {};
  for (const key in gpu.limits) limits[key] = gpu.limits[key as keyof GPUSupportedLimits] as number;
  limits.maxStorageBuffersPerShaderStage = limit;
  return Object.create(gpu, { limits: { value: limits } }) as GpuDevice;
}

test(
  "a LoRA linear and its gradients: the up-projection and T'·A run in other matmuls' epilogues, equal to the interpreter; a device with few bindings gets a second dispatch instead",
  withGpu(async (gpu) => {
    const { graph, feeds } = loraGraph();
    const want = expectOk(interpret(graph, feeds));
    const fused = await runOnGpu(gpu, graph, feeds);
    const epilogues = fused.compiled.schedule.launches.filter((l) => l.epilogue.includes("low-rank")).map((l) => l.epilogue);
    // forward: x Wᵀ + bias + T Bᵀ + r; backward: dY W + T'·A (x's gradient)
    assert.equal(epilogues, [["bias", "low-rank", "residual"], ["low-rank"]]);
    for (const [name, values] of want) assertClose(fused.outputs.get(name)!, values, 1e-5, `fused ${name}`);

    const split = await runOnGpu(fewBindings(gpu, 4), graph, feeds);
    assert.is(split.stats.dispatches, fused.stats.dispatches + 2, "one more dispatch per low-rank epilogue");
    for (const [name, values] of want) assertClose(split.outputs.get(name)!, values, 1e-5, `split ${name}`);
  }),
);

test.run();
