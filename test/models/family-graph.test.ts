// Every family's graph, built from its declaration and interpreted in float64 on its fixture
// checkpoint, against the PyTorch goldens (spec/golden/make_forward_goldens.py): logits, SFT loss
// and the gradient summaries of every parameter (sum, l2, weighted sum, and all values of 1-D ones).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { trainingGraph } from "../../compiler/autodiff/grad.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { buildFamilyGraph } from "../../compiler/models/family-graph.ts";
import { familyFeeds, INPUT, positionFeeds } from "../../compiler/models/family-inputs.ts";
import { familyNames, type Family } from "../../stdlib/families/index.ts";
import { assertClose, relativeError } from "../support/numeric.ts";
import { expectOk } from "../support/result.ts";
import { feedsFor, loadFixture, type GradSummary } from "./support.ts";

/** The golden's summary of one gradient, computed the same way from ours. */
function summarize(grad: Float64Array, withValues: boolean): number[] {
  let sum = 0;
  let squares = 0;
  let weighted = 0;
  grad.forEach((v, i) => {
    sum += v;
    squares += v * v;
    weighted += v * (1 + (i % 7));
  });
  return [sum, Math.sqrt(squares), weighted, ...(withValues ? grad : [])];
}

const flatten = (g: GradSummary) => [g.sum, g.l2, g.weighted_sum, ...(g.values ?? [])];

for (const name of familyNames) {
  test(`${name}: logits, loss and every parameter gradient match the PyTorch golden`, async () => {
    const fixture = await loadFixture(name);
    const { golden } = fixture;
    const [B, T] = [golden.input_ids.length, golden.input_ids[0].length];
    const g = expectOk(buildFamilyGraph(fixture.family, fixture.config, { batch: B, seq: T }));
    const feeds = feedsFor(fixture);

    const out = expectOk(interpret(g.graph, feeds));
    assertClose(out.get("logits")!, golden.logits.flat(2), 1e-4, `${name} logits`);
    assertClose(out.get("loss")!, [golden.loss], 1e-6, `${name} loss`);

    // Every graph weight has a golden gradient, and every golden gradient a graph weight (a tied
    // family's stored head is not read, so neither side has one).
    assert.equal([...g.weights.keys()].sort(), Object.keys(golden.grads).sort(), `${name}: weights with gradients`);
    const training = expectOk(trainingGraph(g.loss, g.trainable));
    const grads = expectOk(interpret(training.graph, feeds));
    let worst = { error: 0, name: "" };
    for (const [param, node] of g.weights) {
      const expected = flatten(golden.grads[param]);
      const error = relativeError(summarize(grads.get(`grad.${param}`)!, node.shape.length === 1), expected);
      if (error >= worst.error) worst = { error, name: param };
    }
    console.log(`    ${name} gradients of ${g.weights.size} parameters: worst relative error ${worst.error.toExponential(2)} (${worst.name})`);
    assert.ok(worst.error < 1e-3, `${name}: gradient of ${worst.name} off by ${worst.error}`);
  });
}

test("chatglm: the f16 inverse-frequency trait is honoured (exact frequencies miss the golden)", async () => {
  const fixture = await loadFixture("chatglm");
  const { golden } = fixture;
  const logitsOf = (family: Family) => {
    const g = expectOk(buildFamilyGraph(family, fixture.config, { batch: golden.input_ids.length, seq: golden.input_ids[0].length }));
    return expectOk(interpret(g.graph, feedsFor({ ...fixture, family }))).get("logits")!;
  };
  const position = fixture.family.position;
  assert.ok(position.kind === "rope" && position.invFreq === "f16");
  const exact = { ...fixture.family, position: { ...position, invFreq: "f32" as const } };
  const rounded = relativeError(logitsOf(fixture.family), golden.logits.flat(2));
  const unrounded = relativeError(logitsOf(exact), golden.logits.flat(2));
  console.log(`    chatglm logits: f16 inverse frequencies ${rounded.toExponential(2)}, exact ones ${unrounded.toExponential(2)}`);
  assert.ok(rounded < 1e-12 && unrounded > 1e-7);
});

test("a GLM sample without its [gMASK] <sop> prompt end is an input error, not a crash", async () => {
  const fixture = await loadFixture("chatglm");
  const ids = fixture.golden.input_ids.map((row) => row.map(() => 7));
  const result = familyFeeds(fixture.family, fixture.config, { ids, labels: fixture.golden.labels });
  assert.is(result.ok, false);
  if (!result.ok) assert.match(result.diagnostics[0].message, /lacks \[gMASK\] \(501\) followed by <sop> \(504\)/);
});

test("the position inputs from a token on are the tail of the whole sequence's, for every family", async () => {
  for (const name of familyNames) {
    const fixture = await loadFixture(name);
    const ids = fixture.golden.input_ids; // (B, T): GLM rows hold their [gMASK] <sop>
    const T = ids[0].length;
    const whole = expectOk(positionFeeds(fixture.family, fixture.config, ids));
    for (const from of [1, T - 1]) {
      const tail = expectOk(positionFeeds(fixture.family, fixture.config, ids, from));
      assert.equal([...tail.keys()], [...whole.keys()], `${name}: the same inputs`);
      for (const [input, values] of whole) {
        if (input === INPUT.prefixLength) {
          assert.equal([...tail.get(input)!], [...values], `${name}: ${input}`);
          continue;
        }
        const width = values.length / (ids.length * T); // per token
        const want = ids.flatMap((_, b) => [...values.subarray((b * T + from) * width, (b + 1) * T * width)]);
        assert.equal([...tail.get(input)!], want, `${name} from ${from}: ${input}`);
      }
    }
  }
});

test.run();
