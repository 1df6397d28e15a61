// The WebGPU training engine on the quickstart pipeline: its loss sequence equals the float64
// CPU engine's within f32 rounding, and two GPU runs give bitwise-identical losses.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { withGpu } from "../kernels/gpu-harness.ts";
import { relativeError } from "../support/numeric.ts";
import { QUICKSTART, resolvedPipeline, stepLosses } from "./support.ts";

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

test.run();
