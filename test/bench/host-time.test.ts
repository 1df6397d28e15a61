// bench/host-time.ts at a tiny size: one timed run per decode step, whose phases are times that
// lie within the run's, within the step's wall time, over the launches of the compiled decode
// step. Speed is not judged.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { benchHostTime, PROMPT_TOKENS, thinModelOptions } from "../../bench/host-time.ts";
import { buildCachedStep, CACHE_BUCKET, cacheCapacity, copiedOutputs } from "../../compiler/models/cached-graph.ts";
import { compileGraph } from "../../compiler/passes/compile.ts";
import { withGpu } from "../kernels/gpu-harness.ts";

const test = suite("bench host time");

test(
  "per decode step, one run over the decode step's launches, its phases within it and it within the step",
  withGpu(async (gpu) => {
    const [layers, steps] = [2, 3];
    const { runs, wallMs } = await benchHostTime(gpu, layers, steps);
    assert.is(runs.length, steps);
    assert.is(wallMs.length, steps);
    assert.is(gpu.hostPhases, undefined, "the bench stops timing the device's runs");
    // the decode step as the GPU runner compiles it: one new token over the prompt's bucket
    const { family, config } = thinModelOptions(layers);
    const g = buildCachedStep(family, config, { batch: 1, past: cacheCapacity(PROMPT_TOKENS, CACHE_BUCKET), fresh: 1 });
    assert.ok(g.ok);
    const compiled = compileGraph(g.value, { copiedOut: copiedOutputs(g.value) });
    assert.ok(compiled.ok);
    runs.forEach((r, i) => {
      const phases = [r.refreshMs, r.updateMs, r.recordMs, r.submitMs];
      const shown = JSON.stringify({ step: i, ...r, wallMs: wallMs[i] });
      assert.ok(phases.every((ms) => ms >= 0), shown);
      // the phases are laps of one clock, so only rounding may put their sum past the whole
      assert.ok(phases.reduce((a, b) => a + b) <= r.runMs + 1e-9, shown);
      assert.ok(r.runMs <= wallMs[i], shown);
      assert.is(r.launches, compiled.value.schedule.launches.length, shown);
    });
  }),
);

test.run();
