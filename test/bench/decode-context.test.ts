// bench/decode-context.ts at small sizes: it runs on this adapter and reports a time for every
// prompt length, one of them past the first cache bucket (its rows then move once), after as
// many decode steps as asked, whose last logits are those of the CPU reference on the same
// model and ids (over an f16 cache, the reference's cache rounded the same way). Speed is not judged.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { benchDecodeContext, contextModelOptions, decodeAfterPrompt } from "../../bench/decode-context.ts";
import { CachedGenerationModel, interpreterRunnerOf } from "../../runtime/generate/cached-model.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { assertClose } from "../support/numeric.ts";

const test = suite("bench decode context");

test(
  "a median and a fastest step per prompt length, after the steps asked, decoding as the CPU reference does",
  withGpu(async (gpu) => {
    const steps = 3;
    const rows = await benchDecodeContext(gpu, [4, 62], steps);
    assert.equal(rows.map((r) => r.promptTokens), [4, 62]);
    // 62 cached positions fill the prompt's 64-position bucket at the third step, which moves
    assert.equal(rows.map((r) => r.movesMs.length), [0, 1]);
    const reference = new CachedGenerationModel(contextModelOptions());
    for (const r of rows) {
      assert.ok(r.fastestMs > 0 && Number.isFinite(r.medianMs), JSON.stringify({ medianMs: r.medianMs, fastestMs: r.fastestMs }));
      // the reference takes the steps asked: a bench that took other steps ends on other logits
      const { logits } = await decodeAfterPrompt(reference, r.promptTokens, steps);
      assertClose(r.logits, logits, 1e-4, `prompt ${r.promptTokens}: the last step's logits, GPU vs CPU reference`);
    }
  }),
);

test(
  "over an f16 cache, as the CPU reference whose cache rounds to f16 decodes",
  withGpu(async (gpu) => {
    const steps = 3;
    const [row] = await benchDecodeContext(gpu, [62], steps, "f16");
    assert.equal(row.movesMs.length, 1);
    const { logits } = await decodeAfterPrompt(new CachedGenerationModel(contextModelOptions(), interpreterRunnerOf("f16")), 62, steps);
    // within 2e-5: an f32 cache's logits lie 5e-5 from this reference
    assertClose(row.logits, logits, 2e-5, "the last step's logits, GPU vs CPU reference, f16 caches");
  }),
);

test.run();
