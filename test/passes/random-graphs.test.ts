// Property test of the whole pass pipeline: seeded random graphs of elementwise, movement,
// reduction, matmul and norm ops (and their training graphs) compile, and the scheduled launches
// run on the planned memory give the interpreter's numbers.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { trainingGraph } from "../../compiler/autodiff/grad.ts";
import * as b from "../../compiler/ir/build.ts";
import { graph, numel, sameShape, topoSort, type Node } from "../../compiler/ir/node.ts";
import { Random } from "../../runtime/random.ts";
import { assertSameOutputs, compile } from "./compile-support.ts";

const SHAPE = [2, 3, 4];

/** A random graph over (2, 3, 4) tensors; every op keeps that shape so any two nodes combine. */
function randomGraph(rng: Random): { outputs: Node[]; params: Node[] } {
  const params = [b.param("p0", SHAPE), b.param("p1", SHAPE), b.param("w", [4, 4]), b.param("g", [4])];
  const pool: Node[] = [params[0], params[1]];
  const pick = () => pool[rng.int(pool.length)];
  const steps: (() => Node)[] = [
    () => [b.tanh, b.sigmoid, b.silu, b.neg, b.geluTanh][rng.int(5)](pick()),
    () => [b.add, b.sub, b.mul, b.maximum][rng.int(4)](pick(), pick()),
    () => b.exp(b.tanh(pick())),
    () => b.broadcast([b.sum, b.mean, b.reduceMax][rng.int(3)](pick(), rng.int(3)), SHAPE),
    () => b.reshape(b.permute(b.reshape(pick(), [4, 3, 2]), [2, 1, 0]), SHAPE),
    () => b.reshape(b.permute(pick(), [0, 2, 1]), SHAPE),
    () => {
      const x = pick();
      const axis = 1 + rng.int(2);
      const cut = 1 + rng.int(SHAPE[axis] - 1);
      return b.concat([b.slice(x, axis, cut, SHAPE[axis]), b.slice(pick(), axis, 0, cut)], axis);
    },
    () => b.add(b.matmul(pick(), params[2], { transB: rng.int(2) === 1 }), rng.int(2) ? pick() : b.expandTo(params[3], SHAPE)),
    () => b.rmsNorm(pick(), params[3], 1e-5),
    () => b.where(b.greater(pick(), pick()), pick(), b.scale(pick(), 0.5)),
  ];
  for (let i = 0; i < 14; i++) pool.push(steps[rng.int(steps.length)]());
  const outputs = [pool[pool.length - 1], pool[pool.length - 2], pick()];
  return { outputs, params: params.filter((p) => outputs.some((o) => topoSort([o]).includes(p))) };
}

for (let seed = 1; seed <= 24; seed++) {
  test(`random graph ${seed}: forward, training and checkpointed training, scheduled, match the interpreter`, () => {
    const rng = new Random(seed);
    const { outputs, params } = randomGraph(rng);
    const forward = graph(outputs.map((o, i): [string, Node] => [`out${i}`, o]));
    const feeds = new Map(["p0", "p1", "w", "g", "weights"].map((name): [string, Float64Array] => [name, Float64Array.from({ length: name === "w" ? 16 : name === "g" ? 4 : 24 }, () => rng.normal())]));
    assertSameOutputs(forward, compile(forward), feeds, `graph ${seed} forward`);
    // loss = Σ out ⊙ weights over the outputs
    const weights = b.input("weights", SHAPE);
    const terms = outputs.filter((o) => sameShape(o.shape, SHAPE)).map((o) => b.reshape(b.sum(b.reshape(b.mul(o, weights), [numel(SHAPE)]), 0), []));
    const loss = terms.reduce((acc, t) => b.add(acc, t));
    const train = trainingGraph(loss, params);
    assert.ok(train.ok);
    assertSameOutputs(train.value.graph, compile(train.value.graph), feeds, `graph ${seed} training`);
    // checkpointing at random forward nodes: everything else the backward reads is recomputed
    const forwardNodes = topoSort([loss]).filter((n) => n.op !== "param" && n.op !== "input" && n.op !== "const");
    const keep = forwardNodes.filter(() => rng.uniform() < 0.2);
    assertSameOutputs(train.value.graph, compile(train.value.graph, { checkpoints: keep }), feeds, `graph ${seed} checkpointed at ${keep.length} nodes`);
  });
}

test.run();
