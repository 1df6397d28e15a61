// Whole-model parity of the forward pass on the GPU: every family's graph, compiled and run by
// the executor on its fixture checkpoint, gives the PyTorch golden's logits and loss
// (spec/golden/make_forward_goldens.py) and the float64 interpreter's. Dispatches per layer and
// the bytes the executor allocates (one buffer per node) against the memory plan's figures are
// printed; the allocation must agree with the plan's no-reuse figure within 5%.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { interpret } from "../../compiler/ir/interpret.ts";
import { formatBytes } from "../../compiler/passes/memory-plan.ts";
import { familyNames } from "../../stdlib/families/index.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { feedsFor, loadFixture } from "../models/support.ts";
import { assertClose } from "../support/numeric.ts";
import { expectOk } from "../support/result.ts";
import { dispatchesPerLayer, fixtureGraph, runOnGpu } from "./support.ts";

for (const name of familyNames) {
  test(
    `${name}: logits and loss on the GPU match the PyTorch golden and the interpreter`,
    withGpu(async (gpu) => {
      const fixture = await loadFixture(name);
      const g = fixtureGraph(fixture);
      const feeds = feedsFor(fixture);
      const run = await runOnGpu(gpu, g.graph, feeds);
      const reference = expectOk(interpret(g.graph, feeds));
      const logits = run.outputs.get("logits")!;
      assertClose(logits, fixture.golden.logits.flat(2), 1e-4, `${name} logits vs golden`);
      assertClose(logits, reference.get("logits")!, 1e-4, `${name} logits vs interpreter`);
      assertClose(run.outputs.get("loss")!, [fixture.golden.loss], 1e-5, `${name} loss vs golden`);

      const { stats, compiled } = run;
      const perLayer = dispatchesPerLayer(gpu, fixture);
      console.log(`    ${name}: ${stats.dispatches} dispatches (${stats.copies} view copies), ${perLayer.forward} per layer forward, ${perLayer.training} per layer in a training step`);
      const p = compiled.plan;
      const planned = p.categories.weights + p.categories.inputs + p.noReuseArenaBytes;
      console.log(
        `    ${name} memory: allocated ${formatBytes(stats.nodeBytes + stats.scratchBytes)} (one buffer per node ${formatBytes(stats.nodeBytes)} + side outputs and host data ${formatBytes(stats.scratchBytes)}); plan: ${formatBytes(planned)} without reuse, peak ${formatBytes(p.peakBytes)} with its arena`,
      );
      assert.ok(perLayer.forward > 0 && perLayer.training > perLayer.forward);
      // one buffer per node is the plan without reuse: its accounting must match what is allocated
      const allocated = stats.nodeBytes + stats.scratchBytes;
      assert.ok(Math.abs(allocated - planned) < 0.05 * planned, `${name}: allocated ${allocated} B vs planned ${planned} B`);
    }),
  );
}

test.run();
