// bench/decode-context.ts at small sizes: it runs on this adapter and reports a time for every
// prompt length, one of them past the first cache bucket (its rows then move once). Speed is not judged.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { benchDecodeContext } from "../../bench/decode-context.ts";
import { withGpu } from "../kernels/gpu-harness.ts";

const test = suite("bench decode context");

test(
  "a median and a fastest step per prompt length, positive and finite",
  withGpu(async (gpu) => {
    const rows = await benchDecodeContext(gpu, [4, 62], 3);
    assert.equal(rows.map((r) => [r.promptTokens, r.steps]), [[4, 3], [62, 3]]);
    for (const r of rows) assert.ok(r.fastestMs > 0 && r.fastestMs <= r.medianMs && Number.isFinite(r.medianMs), JSON.stringify(r));
  }),
);

test.run();
