// Whole-model gradient checks: the tiny transformer in the configurations of the five families,
// every parameter tensor, autodiff in float64 against central finite differences.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { tinyTransformer } from "../../compiler/models/tiny-transformer.ts";
import { verifyGraph } from "../../compiler/ir/verify.ts";
import { graph } from "../../compiler/ir/node.ts";
import { checkGradients } from "./check-gradients.ts";
import { families, randomFeeds } from "./feeds.ts";

for (const [family, options] of Object.entries(families)) {
  test(`${family}: every parameter's gradient matches finite differences (< 1e-6)`, () => {
    const model = tinyTransformer(options);
    assert.ok(model.ok);
    assert.equal(verifyGraph(graph([["loss", model.value.loss]])), []);
    const feeds = randomFeeds(model.value, options, 7);
    checkGradients(model.value.loss, model.value.params, feeds, { samples: 6, tolerance: 1e-6, seed: 3, label: family });
  });
}

test("bad dimensions are an SFT4001 error value, not an exception", () => {
  const r = tinyTransformer({ ...families["chatglm2"], heads: 3 });
  assert.not.ok(r.ok);
  assert.ok(r.diagnostics.every((d) => d.code === "SFT4001"));
  assert.match(r.diagnostics.map((d) => d.message).join("\n"), "not divisible by heads 3");
});

test.run();
