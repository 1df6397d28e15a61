// LoRA in the family graphs, on the fixture checkpoints: a zero B leaves the logits exactly as the
// base model's; training the adapters alone builds no gradient work for the frozen weights; the
// adapter gradients agree with central finite differences of the interpreted float64 loss.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { trainingGraph } from "../../compiler/autodiff/grad.ts";
import { interpret } from "../../compiler/ir/interpret.ts";
import { topoSort, type Node } from "../../compiler/ir/node.ts";
import { buildFamilyGraph, type TrainingMethod } from "../../compiler/models/family-graph.ts";
import { Random } from "../../runtime/random.ts";
import { familyNames } from "../../stdlib/families/index.ts";
import { assertClose } from "../support/numeric.ts";
import { expectError, expectOk } from "../support/result.ts";
import { adapterValues, centralDifference, feedsFor, loadFixture, type Fixture } from "./support.ts";

const lora = (targets: readonly string[]): TrainingMethod => ({ kind: "lora", rank: 2, alpha: 4, targets });

function build(fixture: Fixture, method?: TrainingMethod) {
  const { input_ids } = fixture.golden;
  return expectOk(buildFamilyGraph(fixture.family, fixture.config, { batch: input_ids.length, seq: input_ids[0].length, method }));
}

/** The nodes a training graph adds to its forward pass. */
function backwardNodes(loss: Node, params: Node[]): Node[] {
  const training = expectOk(trainingGraph(loss, params));
  return topoSort(training.graph.outputs.values()).filter((n) => !training.forward.has(n));
}

/** Backward nodes that compute a weight gradient: dW = xᵀ g (a matmul with a transposed left side). */
const weightGradients = (nodes: Node[]) => nodes.filter((n) => n.op === "matmul" && n.attrs.transA);

for (const name of familyNames) {
  test(`${name}: LoRA on every module with B = 0 gives exactly the base logits`, async () => {
    const fixture = await loadFixture(name);
    const base = expectOk(interpret(build(fixture).graph, feedsFor(fixture))).get("logits")!;
    const g = build(fixture, lora(["all"]));
    assert.is(g.adapters.size, 2 * fixture.family.lora.modules.length * fixture.config.dims.layers);
    const random = new Random(7);
    const adapted = expectOk(interpret(g.graph, feedsFor(fixture, adapterValues(g, (n) => random.normalArray(n, 0.1), true)))).get("logits")!;
    assert.ok(base.every((v, i) => v === adapted[i]), `${name}: logits changed with B = 0`);
    const nonzero = expectOk(interpret(g.graph, feedsFor(fixture, adapterValues(g, (n) => random.normalArray(n, 0.1), false)))).get("logits")!;
    assert.ok(nonzero.some((v, i) => v !== base[i]), `${name}: a nonzero B must change the logits`);
  });

  test(`${name}: LoRA gradients reach the adapters only; frozen weights get no gradient work`, async () => {
    const fixture = await loadFixture(name);
    const g = build(fixture, lora(fixture.family.lora.defaultTargets));
    assert.equal(g.trainable, [...g.adapters.values()]);
    const backward = backwardNodes(g.loss, g.trainable);
    assert.is(weightGradients(backward).length, g.adapters.size, "one weight-gradient matmul per adapter matrix");
    assert.not.ok(backward.some((n) => n.op === "embedding_backward"), "no embedding gradient");
    assert.not.ok(backward.some((n) => n.op === "norm_backward" && n.attrs.wrt !== 0), "no norm weight or bias gradient");

    // The same count for full fine-tuning sees every matrix: the check can tell the two apart.
    const full = build(fixture);
    const fullBackward = backwardNodes(full.loss, full.trainable);
    // every matrix but the embedding is a linear; a tied head makes the embedding one too
    const matrices = [...full.weights.values()].filter((w) => w.shape.length === 2).length;
    assert.is(weightGradients(fullBackward).length, matrices - (fixture.config.tiedHead ? 0 : 1));
    assert.ok(fullBackward.some((n) => n.op === "embedding_backward"));
  });

  test(`${name}: LoRA adapter gradients agree with central finite differences`, async () => {
    const fixture = await loadFixture(name);
    const g = build(fixture, lora(["all"]));
    const random = new Random(11);
    const adapters = adapterValues(g, (n) => random.normalArray(n, 0.1), false);
    const feeds = feedsFor(fixture, adapters);
    const grads = expectOk(interpret(expectOk(trainingGraph(g.loss, g.trainable)).graph, feeds));
    const loss = () => expectOk(interpret(g.graph, feeds)).get("loss")![0];
    const names = [...g.adapters.keys()];
    const picked = [names[0], names[1], names[names.length - 2], names[names.length - 1]]; // first and last module's A and B
    const analytic: number[] = [];
    const numeric: number[] = [];
    for (const param of picked) {
      const values = adapters.get(param)!;
      for (const i of [0, values.length - 1]) {
        numeric.push(centralDifference(values, i, 1e-6, loss));
        analytic.push(grads.get(`grad.${param}`)![i]);
      }
    }
    assertClose(analytic, numeric, 1e-6, `${name} LoRA d loss / d (${picked.length} adapters x 2 entries)`);
  });
}

test("a LoRA target the family lacks, and a bad rank, are errors that name the choices", async () => {
  const fixture = await loadFixture("baichuan7b");
  const options = { batch: 1, seq: 4 };
  const unknown = expectError(buildFamilyGraph(fixture.family, fixture.config, { ...options, method: lora(["query_key_value"]) }));
  assert.is(unknown.code, "SFT2022");
  assert.match(unknown.hint ?? "", "W_pack");
  const rank = expectError(buildFamilyGraph(fixture.family, fixture.config, { ...options, method: { kind: "lora", rank: 0, alpha: 16, targets: ["W_pack"] } }));
  assert.is(rank.code, "SFT3002");
  const long = expectError(buildFamilyGraph(fixture.family, fixture.config, { batch: 1, seq: fixture.config.dims.maxPositions + 1 }));
  assert.is(long.code, "SFT3006");
});

test.run();
