// The passes on the graphs of the real family declarations (compiler/models/family-graph.ts) and
// their fixture checkpoints: full fine-tuning and LoRA training steps, scheduled with and without
// checkpointing, run launch by launch on the planned memory, give the interpreter's loss and
// gradients. Launch counts and memory figures are printed.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { trainingGraph } from "../../compiler/autodiff/grad.ts";
import { buildFamilyGraph, type TrainingMethod } from "../../compiler/models/family-graph.ts";
import { formatBytes } from "../../compiler/passes/memory-plan.ts";
import { kernelCount } from "../../compiler/passes/print-schedule.ts";
import { Random } from "../../runtime/random.ts";
import { familyNames } from "../../stdlib/families/index.ts";
import { expectOk } from "../support/result.ts";
import { adapterValues, feedsFor, loadFixture } from "../models/support.ts";
import { assertSameOutputs, compile } from "./compile-support.ts";

for (const name of familyNames) {
  test(`${name}: full and LoRA training steps of the family graph, scheduled, match the interpreter`, async () => {
    const fixture = await loadFixture(name);
    const [batch, seq] = [fixture.golden.input_ids.length, fixture.golden.input_ids[0].length];
    const methods: TrainingMethod[] = [{ kind: "full" }, { kind: "lora", rank: 2, alpha: 4, targets: fixture.family.lora.defaultTargets }];
    for (const method of methods) {
      const g = expectOk(buildFamilyGraph(fixture.family, fixture.config, { batch, seq, method }));
      const rng = new Random(5);
      const feeds = feedsFor(fixture, adapterValues(g, (n) => rng.normalArray(n, 0.1), false));
      const training = expectOk(trainingGraph(g.loss, g.trainable)).graph;
      const plain = compile(training);
      assertSameOutputs(training, plain, feeds, `${name} ${method.kind}`);
      const p = plain.plan;
      console.log(`    ${name} ${method.kind}: ${kernelCount(plain.schedule)} launches, peak ${formatBytes(p.peakBytes)} (arena ${formatBytes(p.arenaBytes)}, ${formatBytes(p.noReuseArenaBytes)} without reuse)`);
      assert.ok(p.arenaBytes < p.noReuseArenaBytes);
    }
  });
}

test.run();
