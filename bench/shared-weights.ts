// Random weights for the benchmarks' 7B-sized models (the decode case of generation.ts and the
// training steps of e2e-train.ts): one seeded f32 array per distinct (kind, shape), shared by
// every weight of that shape, so such a model costs a few arrays of host memory and draws, not
// 7 B of each. Values do not change a step's speed; they are scaled as an initialisation so the
// logits stay finite: norms 1, biases 0, the rest N(0, 0.02²) (Llama's initializer_range, as the
// PyTorch references draw). Weights of one shape share one array object, which also lets NF4
// quantize each shape once (runtime/execute/nf4-weights.ts).
import { ok, type Result } from "../compiler/diagnostics.ts";
import { numel } from "../compiler/ir/node.ts";
import { buildFamilyGraph } from "../compiler/models/family-graph.ts";
import type { StreamedTensor } from "../runtime/generate/weights.ts";
import type { GpuDevice } from "../runtime/gpu/device.ts";
import { Random } from "../runtime/random.ts";
import type { ModelConfig } from "../stdlib/families/config.ts";
import { expandTemplate, type Family } from "../stdlib/families/family.ts";

/** Each weight's role by graph name (norms are 1, biases 0, the embedding table is gathered). */
export function weightRoles(family: Family, config: ModelConfig): Map<string, string> {
  return new Map(family.tensors.flatMap((t) => expandTemplate(t.name, config.dims.layers).map((name) => [name, t.role] as const)));
}

/**
 * Every weight of the family graph, in graph order, as shared seeded arrays (above).
 * `beforeEach` runs before each tensor after the first (the caller lets the device catch up
 * with its uploads there).
 */
export async function* sharedShapeWeights(family: Family, config: ModelConfig, seed: number, beforeEach?: () => Promise<void>): AsyncGenerator<Result<StreamedTensor>> {
  const built = buildFamilyGraph(family, config, { batch: 1, seq: 2 });
  if (!built.ok) {
    yield built;
    return;
  }
  const roles = weightRoles(family, config);
  const random = new Random(seed);
  const drawn = new Map<string, Float32Array>();
  let first = true;
  for (const [name, node] of built.value.weights) {
    const role = roles.get(name) ?? "";
    const kind = role.endsWith(".bias") ? "zero" : role.endsWith("norm.weight") ? "one" : "normal";
    const key = `${kind} ${node.shape.join("x")}`;
    let values = drawn.get(key);
    if (!values) {
      const n = numel(node.shape);
      values = kind === "zero" ? new Float32Array(n) : kind === "one" ? new Float32Array(n).fill(1) : random.normalArray(n, 0.02);
      drawn.set(key, values);
    }
    if (!first) await beforeEach?.();
    first = false;
    yield ok({ name, shape: [...node.shape], values });
  }
}

/** Waits until the device has run what was submitted, Dawn's staged uploads included (their host copies are then freed). */
export async function uploadsCaughtUp(gpu: GpuDevice): Promise<void> {
  gpu.queue.submit([]);
  await gpu.queue.onSubmittedWorkDone();
}
