// Whole-model gradient checks: the tiny transformer in the configurations of the five families,
// every parameter tensor, autodiff in float64 against central finite differences.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { tinyTransformer, type TinyTransformerOptions } from "../../compiler/models/tiny-transformer.ts";
import { verifyGraph } from "../../compiler/ir/verify.ts";
import { graph } from "../../compiler/ir/node.ts";
import { checkGradients } from "./check-gradients.ts";
import { randomFeeds } from "./feeds.ts";

const base = { vocab: 11, hidden: 8, layers: 2, heads: 2, kvHeads: 2, ffn: 12, batch: 2, seq: 5 };

/** Tiny stand-ins for each family's traits (models.md §1-§5). */
export const families: Record<string, TinyTransformerOptions> = {
  "baichuan-7b": { ...base, norm: "rms", position: { kind: "rope", style: "half" }, mlp: "swiglu", residual: "pre" },
  "baichuan-13b": { ...base, heads: 4, kvHeads: 4, norm: "rms", position: { kind: "alibi" }, mlp: "swiglu", residual: "pre" },
  moss: { ...base, hidden: 16, norm: "layer", position: { kind: "rope", style: "interleaved", rotaryDim: 4 }, mlp: "gelu", residual: "parallel", bias: true },
  chatglm: { ...base, norm: "layer", position: { kind: "rope", style: "half", glm2d: true }, mlp: "gelu", residual: "glm", prefixMask: true, bias: true, tiedHead: true },
  chatglm2: { ...base, hidden: 16, heads: 4, kvHeads: 2, norm: "rms", position: { kind: "rope", style: "interleaved", rotaryDim: 2 }, mlp: "swiglu", residual: "pre", bias: true },
};

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
