// bench/decode-context.ts at small sizes: it runs on this adapter and reports a time for every
// prompt length, one of them past the first cache bucket (its rows then move once), after as
// many decode steps as asked, whose last logits are those of the CPU reference on the same
// model and ids. Speed is not judged.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { benchDecodeContext, contextModelOptions, decodeAfterPrompt } from "../../bench/decode-context.ts";
import { CachedGenerationModel } from "../../runtime/generate/cached-model.ts";
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

test.run();
