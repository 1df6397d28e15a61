// Statistics saved for a backward (compiler/passes/saved-statistics.ts): every family's training
// step keeps each attention's log-sum-exp and each norm's statistics beside the output, which
// its backward reads; an evaluation step keeps none (the plan counts them in the launch
// workspace, which does not grow with depth); a checkpointed step keeps those of the forwards its
// backward reads (the recomputed ones, and the last layer's) only. test/execute/memory-plan.test.ts checks that the executor allocates as planned.
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { Node } from "../../compiler/ir/node.ts";
import { evaluationGraph } from "../../compiler/passes/chunk-loss.ts";
import { compileGraph } from "../../compiler/passes/compile.ts";
import { statisticsRead, writesStatistics } from "../../compiler/passes/saved-statistics.ts";
import { launchScratchBytes } from "../../compiler/plan/launch-scratch.ts";
import { layerInputs } from "../../compiler/plan/step-plan.ts";
import { familyNames } from "../../stdlib/families/index.ts";
import { fixtureGraph, trainingOf } from "../execute/support.ts";
import { loadFixture, type Fixture } from "../models/support.ts";
import { expectOk } from "../support/result.ts";

// The forwards of a compiled graph that write statistics, the read ones, and the plan's side bytes of each.
function compiled(g: Parameters<typeof compileGraph>[0], checkpoints?: readonly Node[]) {
  const { schedule, plan } = expectOk(compileGraph(g, { checkpoints }));
  const forwards = schedule.launches.flatMap((l) => l.outputs).filter(writesStatistics);
  const read = statisticsRead(schedule);
  const sideBytes = (nodes: Node[]) => nodes.reduce((n, f) => n + plan.buffers.get(f)!.sideBytes, 0);
  return { schedule, forwards, read, sideBytes };
}

for (const name of familyNames) {
  test(`${name}: training keeps every forward's statistics, evaluation none, a checkpointed step the recomputed forwards'`, async () => {
    const fixture = await loadFixture(name);
    const plain = fixtureGraph(fixture);
    const training = compiled(trainingOf(plain));
    assert.ok(training.forwards.length > 0);
    assert.equal(training.forwards.filter((f) => !training.read.has(f)), [], "every forward's statistics are read");
    assert.ok(training.sideBytes(training.forwards) > 0);

    const evaluation = compiled(evaluationGraph(plain.loss));
    assert.ok(evaluation.forwards.length > 0);
    assert.is(evaluation.read.size, 0, "no backward reads any");
    assert.is(evaluation.sideBytes(evaluation.forwards), 0, "none is kept beside its output");

    // a recomputed layer's forward runs twice (the last layer's once): the first run's attention
    // statistics go unread
    const { layers } = fixture.config.dims;
    const checkpointed = compiled(trainingOf(plain), layerInputs(plain, fixture.family, layers));
    const attention = checkpointed.forwards.filter((f) => f.op === "attention");
    assert.is(attention.length, 2 * layers - 1);
    assert.is(attention.filter((f) => checkpointed.read.has(f)).length, layers, "one attention's a layer");
    // and one norm's for each norm backward: the latest before it, where a layer's first norm ran twice
    const norms = checkpointed.forwards.filter((f) => f.op === "rms_norm" || f.op === "layer_norm");
    const normBackwards = checkpointed.schedule.launches.filter((l) => l.kernel === "norm_backward").length;
    assert.ok(norms.length > normBackwards, `${norms.length} norm forwards for ${normBackwards} backwards`);
    assert.is(norms.filter((f) => checkpointed.read.has(f)).length, normBackwards);
  });

  test(`${name}: an evaluation step's unread statistics share the launch workspace: one more layer adds none`, async () => {
    const fixture = await loadFixture(name);
    const deeper: Fixture = { ...fixture, config: { ...fixture.config, dims: { ...fixture.config.dims, layers: fixture.config.dims.layers + 1 } } };
    const [base, more] = [fixture, deeper].map((f) => launchScratchBytes(compiled(evaluationGraph(fixtureGraph(f).loss)).schedule));
    assert.is(more, base);
  });
}

test.run();
