// Generation on the GPU keeps the weights on the device: uploaded once by the first step, bound
// into every later step's executor; executors are reused for steps of the same shape. Skips
// without a GPU adapter.
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { CachedGenerationModel } from "../../runtime/generate/cached-model.ts";
import { generate } from "../../runtime/generate/engine.ts";
import { gpuRunner } from "../../runtime/generate/gpu-runner.ts";
import { checkpointWeights } from "../../runtime/generate/weights.ts";
import { Random } from "../../runtime/random.ts";
import { families } from "../../stdlib/families/index.ts";
import { FIXTURES } from "../checkpoint/support.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { expectOk } from "../support/result.ts";
import { greedySettings } from "./gpu-support.ts";

const greedy = greedySettings(5);

test(
  "the weights are uploaded once, by the first step, whatever the number of steps",
  withGpu(async (gpu) => {
    const family = families.baichuan7b;
    const { config, weights } = expectOk(await checkpointWeights(join(FIXTURES, "baichuan7b"), family));
    const runner = gpuRunner(gpu);
    const model = new CachedGenerationModel({ family, config, weights }, runner);
    const weightBytes = [...weights.values()].reduce((sum, w) => sum + 4 * w.length, 0);
    try {
      const cpu = new CachedGenerationModel({ family, config, weights });
      const prompt = [17, 250, 31, 99, 4, 8];
      const want = expectOk(await generate(cpu, prompt, greedy, new Random(0)));
      const got = expectOk(await generate(model, prompt, greedy, new Random(0)));
      assert.equal(got[0].tokens, want[0].tokens);
      assert.is(runner.stats.weightBytes, weightBytes, "every weight once");
      expectOk(await generate(model, prompt, greedy, new Random(0)));
      assert.is(runner.stats.weightBytes, weightBytes, "a second generation uploads nothing");
    } finally {
      runner.destroy();
    }
  }),
);

test.run();
