// The memory plan of generation (compiler/plan/step-plan.ts, probeGeneration) against the bytes
// the GPU generation session holds at its most (the device's high-water mark of tensor buffers),
// for every family's fixture model: greedy decoding that ends in the prompt's bucket (the prompt's
// step holds the most) or outgrows it (the last move into a larger bucket), at the bucket's edges;
// sampling three sequences; beam search's fork, reorders and move; some of them over an f16 KV cache
// (a 16-bit model's: the plan's dtype f16, the weights f32 as full fine-tuning keeps them). The readback staging buffer,
// which the plan counts, is not a tensor buffer and is left out of both. Skips without a GPU adapter.
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { PlanSettings } from "../../compiler/plan/settings.ts";
import { planStep, type GenerationPhase } from "../../compiler/plan/step-plan.ts";
import type { CacheDType } from "../../compiler/models/cached-graph.ts";
import { CachedGenerationModel } from "../../runtime/generate/cached-model.ts";
import { generate, type Strategy } from "../../runtime/generate/engine.ts";
import { gpuRunner } from "../../runtime/generate/gpu-runner.ts";
import { checkpointWeights } from "../../runtime/generate/weights.ts";
import { Random } from "../../runtime/random.ts";
import { families, familyNames } from "../../stdlib/families/index.ts";
import { FIXTURES } from "../checkpoint/support.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { expectOk } from "../support/result.ts";
import { greedySettings } from "./gpu-support.ts";

const PROMPT_TOKENS = 16;

// [strategy, sequences decoded together (beams, or samples), new tokens, the phases the plan may
// find holding the most, the cache's dtype (f32 where absent)]. With a 16-token prompt the first bucket holds 64 positions: 48 and 49
// new tokens end in it (the last new token is never fed back), 50 move once, with the last token
// fed: the beams' last reorder then has no step over the new bucket beside it, and which of it
// and the move holds more depends on the model's launch scratch.
const CASES: [Strategy, number, number, GenerationPhase[], CacheDType?][] = [
  ["greedy", 1, 30, ["prompt"]],
  ["greedy", 1, 1, ["prompt"]],
  ["greedy", 1, 48, ["prompt"]],
  ["greedy", 1, 49, ["prompt"]],
  ["greedy", 1, 50, ["bucket move"]],
  ["greedy", 1, 100, ["bucket move"]],
  ["sample", 3, 30, ["prompt"]],
  ["beam", 3, 1, ["beam fork"]],
  ["beam", 3, 20, ["beam reorder"]],
  ["beam", 3, 48, ["beam reorder"]],
  ["beam", 3, 49, ["beam reorder"]],
  ["beam", 3, 50, ["bucket move", "beam reorder"]],
  ["greedy", 1, 30, ["prompt"], "f16"],
  ["greedy", 1, 200, ["bucket move"], "f16"],
  ["beam", 3, 20, ["beam reorder"], "f16"],
  ["beam", 3, 50, ["bucket move", "beam reorder"], "f16"],
];
for (const name of familyNames) {
  test(
    `${name}: generation's planned peak is the device's high-water mark (prompt, bucket move, sampling, beam fork, reorder and move)`,
    withGpu(async (gpu) => {
      const family = families[name];
      const { config, weights } = expectOk(await checkpointWeights(join(FIXTURES, name), family));
      // ChatGLM-6B's prompts end in [gMASK] <sop>
      const glm = name === "chatglm" ? [config.tokens.specials["[gMASK]"], config.tokens.specials["<sop>"]] : [];
      const prompt = [...Array.from({ length: PROMPT_TOKENS - glm.length }, (_, i) => ((i * 7) % 500) + 3), ...glm];
      for (const [strategy, beams, maxNewTokens, phases, cacheDtype = "f32"] of CASES) {
        const runner = gpuRunner(gpu, { cacheDtype });
        const model = new CachedGenerationModel({ family, config, weights }, runner);
        const start = gpu.memory.liveBytes;
        (await model.start([prompt])).session.free(); // uploads the weights
        const weightBytes = gpu.memory.liveBytes - start;
        gpu.memory.peakBytes = gpu.memory.liveBytes;
        const settings = { ...greedySettings(maxNewTokens), strategy, numBeams: beams, numReturnSequences: strategy === "beam" ? 1 : beams };
        const made = expectOk(await generate(model, prompt, settings, new Random(0)));
        assert.ok(made.every((m) => m.tokens.length === maxNewTokens), "no early stop");
        const held = gpu.memory.peakBytes - start - weightBytes;
        runner.destroy();

        const plan: PlanSettings = {
          dtype: cacheDtype,
          method: { kind: "full", freezeEmbeddings: false, freezeLayers: 0 },
          batch: 1,
          seq: PROMPT_TOKENS,
          gradientCheckpointing: false,
          gradAccum: 1,
          optimizer: "adamw",
          evaluation: null,
          generation: { strategy, sequences: beams, maxNewTokens },
        };
        const g = expectOk(planStep(family, config, plan)).generation!;
        const planned = g.peak - g.weights - g.staging;
        const label = `${name} ${strategy} x${beams}, ${maxNewTokens} new tokens, ${cacheDtype} cache`;
        console.log(`    ${label}: planned ${planned} B (${g.phase}: cache ${g.kvCache}, step inputs ${g.inputs}, arena ${g.arena}, scratch ${g.scratch}), held ${held} B; weights ${g.weights} B planned, ${weightBytes} B uploaded`);
        assert.is(g.weights, weightBytes, `${label}: weights`);
        assert.ok(phases.includes(g.phase), `${label}: ${g.phase} holds the most, not ${phases.join(" or ")}`);
        assert.is(planned, held, `${label}: planned against held bytes`);
      }
    }),
  );
}

test.run();
