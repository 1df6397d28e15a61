// Whole-model parity of a training step on the GPU: every family's training graph (loss and the
// gradient of every parameter), compiled and run by the executor on its fixture checkpoint,
// gives the float64 interpreter's gradients; LoRA training graphs too. A second executor, whose
// activations and gradients share buffers by lifetime as the memory plan allows, gives
// bitwise-identical outputs (no float atomics anywhere, no live tensor overwritten).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { interpret } from "../../compiler/ir/interpret.ts";
import { formatBytes } from "../../compiler/passes/memory-plan.ts";
import type { TrainingMethod } from "../../compiler/models/family-graph.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { Random } from "../../runtime/random.ts";
import { familyNames, type FamilyName } from "../../stdlib/families/index.ts";
import { frozenWeightDtypes, roundToStorage } from "../../compiler/plan/storage.ts";
import { assertBitwiseEqual, withGpu } from "../kernels/gpu-harness.ts";
import { adapterValues, feedsFor, loadFixture } from "../models/support.ts";
import { assertClose, relativeError } from "../support/numeric.ts";
import { expectOk } from "../support/result.ts";
import { fixtureGraph, runOnGpu, trainingOf } from "./support.ts";

async function checkTraining(gpu: GpuDevice, name: FamilyName, method: TrainingMethod, narrow: "f32" | "bf16" | "f16" = "f32"): Promise<void> {
  const fixture = await loadFixture(name);
  // LoRA's frozen weights stored in `narrow` as the engine stores them for a 16-bit model;
  // the interpreter reads the same rounded values
  const weightDtypes = frozenWeightDtypes(fixture.family, fixture.config, method.kind, narrow);
  const g = fixtureGraph(fixture, method, weightDtypes);
  const rng = new Random(11);
  // LoRA B starts at zero in training; random B here, so every adapter gradient is non-trivial
  const feeds = feedsFor(fixture, adapterValues(g, (n) => rng.normalArray(n, 0.1), false));
  roundToStorage(feeds, weightDtypes);
  const training = trainingOf(g);
  // the second run: a fresh executor whose activations and gradients share buffers by lifetime
  // (the memory plan's); equal bits are recomputed bits, and no sharing overwrote a live tensor
  const first = await runOnGpu(gpu, training, feeds);
  const second = await runOnGpu(gpu, training, feeds, { plan: true });
  const reference = expectOk(interpret(training, feeds));
  const label = `${name} ${method.kind}${narrow === "f32" ? "" : ` (${weightDtypes.size} frozen weights in ${narrow})`}`;
  if (narrow !== "f32") {
    // the narrow weights are the matmuls' B operands and the lookup's table, read as stored
    assert.ok(weightDtypes.size > 0 && [...weightDtypes.keys()].every((w) => g.weights.get(w)?.dtype === narrow), `${label}: graph dtypes`);
    assert.ok(first.kernelKeys.some((k) => k.startsWith("matmul") && k.includes(`b=${narrow}`)), `${label}: a matmul reads ${narrow} weights`);
    assert.ok(first.kernelKeys.some((k) => k.startsWith("embedding_forward") && k.includes(`dtype=${narrow}`)), `${label}: the embedding reads a ${narrow} table`);
  }
  assertClose(first.outputs.get("loss")!, reference.get("loss")!, 1e-5, `${label} loss`);
  const grads = [...training.outputs.keys()].filter((k) => k.startsWith("grad."));
  assert.is(grads.length, g.trainable.length);
  let worst = { error: 0, name: "" };
  for (const k of grads) {
    const error = relativeError(first.outputs.get(k)!, reference.get(k)!);
    if (error >= worst.error) worst = { error, name: k };
    assert.ok(error < 1e-3, `${label} ${k}: relative error ${error}`);
  }
  console.log(`    ${label}: ${grads.length} parameter gradients, worst relative error ${worst.error.toExponential(2)} (${worst.name}); ${first.stats.dispatches} dispatches`);
  for (const k of training.outputs.keys()) assertBitwiseEqual(Float32Array.from(second.outputs.get(k)!), Float32Array.from(first.outputs.get(k)!), `${label} ${k}, second executor`);
  const p = second.compiled.plan;
  console.log(`    ${label} memory: activations and gradients in shared buffers ${formatBytes(second.stats.sharedBytes)}; plan: arena ${formatBytes(p.arenaBytes)}, ${formatBytes(p.noReuseArenaBytes)} without reuse`);
  assert.ok(second.stats.sharedBytes < p.noReuseArenaBytes, `${label}: sharing buffers saves memory`);
}

for (const name of familyNames) {
  test(
    `${name}: every parameter gradient of a training step on the GPU matches the interpreter, bitwise the same with shared buffers`,
    withGpu((gpu) => checkTraining(gpu, name, { kind: "full" })),
  );
}

for (const name of familyNames) {
  test(
    `${name}: LoRA training step on the GPU matches the interpreter, bitwise the same with shared buffers`,
    withGpu(async (gpu) => {
      const fixture = await loadFixture(name);
      await checkTraining(gpu, name, { kind: "lora", rank: 2, alpha: 4, targets: fixture.family.lora.defaultTargets });
    }),
  );
}

// bf16 for the families published in bf16 or f32, f16 for those published in f16 (the default dtypes)
for (const name of familyNames) {
  const narrow = name.startsWith("chatglm") || name === "moss" ? "f16" : "bf16";
  test(
    `${name}: LoRA over ${narrow} frozen weights (block linears, embeddings, head) on the GPU matches the interpreter on the rounded weights`,
    withGpu(async (gpu) => {
      if (narrow === "f16" && !gpu.hasF16) return console.log("    skipped: no shader-f16");
      const fixture = await loadFixture(name);
      await checkTraining(gpu, name, { kind: "lora", rank: 2, alpha: 4, targets: fixture.family.lora.defaultTargets }, narrow);
    }),
  );
}

test.run();
