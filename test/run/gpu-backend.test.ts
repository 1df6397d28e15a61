// The WebGPU training engine on the quickstart pipeline: its loss sequence equals the float64
// CPU engine's within f32 rounding, two GPU runs give bitwise-identical losses, and gradient
// checkpointing (layer inputs kept, the rest recomputed) gives the same losses.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { withGpu } from "../kernels/gpu-harness.ts";
import { relativeError } from "../support/numeric.ts";
import { prepareTraining } from "../../runtime/pipeline/training-setup.ts";
import type { GpuBackend } from "../../runtime/train/gpu-backend.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { createEngine } from "../../runtime/pipeline/run-job.ts";
import { expectOk } from "../support/result.ts";
import { roundToDType } from "../../stdlib/kernels/dtype.ts";
import { engineFor, QUICKSTART, resolvedPipeline, stepLosses } from "./support.ts";

const SHORT = ["train.max_steps=4", "train.eval_every=100", "train.save_every=100"];

test(
  "quickstart: GPU losses equal the float64 CPU engine's within 1e-4 relative over the first steps; two GPU runs are bitwise equal",
  withGpu(async (gpu) => {
    const pipeline = resolvedPipeline(QUICKSTART, SHORT);
    const cpu = await stepLosses(pipeline);
    const first = await stepLosses(pipeline, gpu);
    const second = await stepLosses(pipeline, gpu);
    console.log(`    cpu ${cpu.map((l) => l.toFixed(6)).join(" ")}\n    gpu ${first.map((l) => l.toFixed(6)).join(" ")}`);
    assert.is(first.length, 4);
    const error = relativeError(Float64Array.from(first), Float64Array.from(cpu));
    console.log(`    relative error of the loss sequence: ${error.toExponential(2)}`);
    assert.ok(error < 1e-4, `relative error ${error}`);
    assert.equal(second, first, "second GPU run");
  }),
);

test(
  "quickstart over bf16 weights: the GPU engine (block linears stored in bf16) and the CPU engine train on the same rounded weights, losses within 1e-4",
  withGpu(async (gpu) => {
    const pipeline = resolvedPipeline(QUICKSTART, [...SHORT, "model.dtype=bf16"]);
    // both engines get the block linears rounded to bf16 (a random model's f32 draws are not)
    const setup = expectOk(await prepareTraining(pipeline));
    const plain = expectOk(await prepareTraining(resolvedPipeline(QUICKSTART, SHORT)));
    const linear = [...setup.weights.keys()].find((name) => name.endsWith("query_key_value.weight"))!;
    const w = setup.weights.get(linear)!;
    assert.equal(w, roundToDType("bf16", w), `${linear} holds bf16 values`);
    assert.not.equal(plain.weights.get(linear), roundToDType("bf16", plain.weights.get(linear)!), `${linear} of the f32 pipeline does not`);
    const cpu = await stepLosses(pipeline);
    const onGpu = await stepLosses(pipeline, gpu);
    const error = relativeError(Float64Array.from(onGpu), Float64Array.from(cpu));
    console.log(`    cpu ${cpu.map((l) => l.toFixed(6)).join(" ")}\n    gpu ${onGpu.map((l) => l.toFixed(6)).join(" ")}\n    relative error ${error.toExponential(2)}`);
    assert.ok(error < 1e-4, `relative error ${error}`);
  }),
);

test(
  "frozen weights kept in f16 on a device without shader-f16: SFT5009 naming model.dtype, before any upload",
  withGpu(async (gpu) => {
    const setup = expectOk(await prepareTraining(resolvedPipeline(QUICKSTART, [...SHORT, "model.dtype=f16"])));
    assert.ok([...setup.weightDtypes.values()].includes("f16"), "the block linears are kept in f16");
    const withoutF16 = Object.create(gpu, { hasF16: { value: false } }) as GpuDevice;
    const uploads = gpu.memory.liveBytes;
    const refused = createEngine(setup, withoutF16, false);
    assert.ok(!refused.ok && refused.diagnostics[0].code === "SFT5009" && refused.diagnostics[0].where === "model.dtype", JSON.stringify(refused));
    assert.match(refused.ok ? "" : refused.diagnostics[0].hint ?? "", /model\.dtype = bf16/);
    assert.is(gpu.memory.liveBytes, uploads, "nothing was uploaded");
    // bf16 needs no device feature
    const bf16 = expectOk(await prepareTraining(resolvedPipeline(QUICKSTART, [...SHORT, "model.dtype=bf16"])));
    const engine = createEngine(bf16, withoutF16, false);
    assert.ok(engine.ok, "bf16 frozen weights on a device without shader-f16");
    if (engine.ok) (engine.value as GpuBackend).destroy();
  }),
);

test(
  "quickstart: gradient checkpointing at the layer inputs gives the losses of the run that stores every activation",
  withGpu(async (gpu) => {
    const pipeline = resolvedPipeline(QUICKSTART, SHORT);
    const stored = await stepLosses(pipeline, gpu);
    const recomputed = await stepLosses(pipeline, gpu, true);
    // the checkpointed program recomputes the layers' activations: more dispatches per step
    const setup = expectOk(await prepareTraining(pipeline));
    const dispatches = async (checkpointing: boolean) => {
      const backend = engineFor(setup, gpu, checkpointing) as GpuBackend;
      await backend.forwardBackward(setup.data.next(), 1);
      const n = backend.compiledPrograms()[0].executor.stats().dispatches;
      backend.destroy();
      return n;
    };
    const [plain, checkpointed] = [await dispatches(false), await dispatches(true)];
    console.log(`    dispatches per micro-batch: ${plain} storing, ${checkpointed} recomputing`);
    assert.ok(checkpointed > plain, "checkpointing recomputes");
    const error = relativeError(Float64Array.from(recomputed), Float64Array.from(stored));
    console.log(`    relative difference ${error.toExponential(2)}${error === 0 ? " (bitwise equal)" : ""}`);
    assert.ok(error < 1e-6, `relative difference ${error}`);
  }),
);

test.run();
