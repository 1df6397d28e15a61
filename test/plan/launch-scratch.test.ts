// The launches' scratch the plan counts (compiler/plan/launch-scratch.ts: host-written tables and
// the shared workspace) against what the GPU executor allocates beside the plan's buffers, for
// every family's tiny forward, full, checkpointed and LoRA training graphs. The executor's scratch
// also holds the side outputs, which the plan counts in its arena; what is left must be equal (the
// plan does not count contiguous copies of views, which none of these graphs needs). LoRA training runs again
// with attention on the score-matrix path, whose scores the workspace then holds; and a decode
// step over the KV cache, whose attention keeps partial sums in the workspace.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { numel, topoSort, type Graph, type Node } from "../../compiler/ir/node.ts";
import { buildCachedStep, CACHE } from "../../compiler/models/cached-graph.ts";
import { INPUT } from "../../compiler/models/family-inputs.ts";
import type { TrainingMethod } from "../../compiler/models/family-graph.ts";
import { compileGraph } from "../../compiler/passes/compile.ts";
import { launchScratchBytes } from "../../compiler/plan/launch-scratch.ts";
import { layerInputs } from "../../compiler/plan/step-plan.ts";
import { GraphExecutor } from "../../runtime/execute/executor.ts";
import type { AttentionScoresChoice } from "../../stdlib/kernels/attention-scores.ts";
import type { GpuDevice } from "../../runtime/gpu/device.ts";
import { Random } from "../../runtime/random.ts";
import { familyNames } from "../../stdlib/families/index.ts";
import { feedsOf, fixtureGraph, trainingOf } from "../execute/support.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { adapterValues, feedsFor, loadFixture } from "../models/support.ts";
import { expectOk } from "../support/result.ts";

// run once: RoPE's table is written (and sized) when the positions are first read
// `scores`: attention launches on the score-matrix path where it applies; returns whether any took it
async function compare(gpu: GpuDevice, label: string, g: Graph, feeds: ReadonlyMap<string, Float64Array>, checkpoints?: readonly Node[], scores?: AttentionScoresChoice, positions?: number): Promise<boolean> {
  const { schedule, plan } = expectOk(compileGraph(g, { checkpoints }));
  const ex = expectOk(GraphExecutor.create(gpu, schedule, new Map(), { plan, attentionScores: scores }));
  for (const [name, values] of feeds) ex.write(name, values);
  expectOk(await ex.run());
  const stats = ex.stats();
  const scoresPath = ex.kernelKeys().some((k) => k.startsWith("attention_scores_softmax["));
  ex.destroy();
  const side = [...plan.buffers.values()].reduce((n, b) => n + b.sideBytes, 0);
  const planned = launchScratchBytes(schedule, scores, positions);
  const allocated = stats.scratchBytes - side;
  console.log(`    ${label}: scratch planned ${planned} B, allocated ${allocated} B (workspace ${stats.workspaceBytes} B, side outputs ${side} B)`);
  assert.ok(allocated > 0, `${label}: the launches take scratch`);
  assert.is(planned, allocated, `${label}: planned against allocated bytes`);
  return scoresPath;
}

const scoresFamilies = new Set<string>();

for (const name of familyNames) {
  test(
    `${name}: the launches' planned scratch matches the executor's (forward; full, checkpointed and LoRA training)`,
    withGpu(async (gpu) => {
      const fixture = await loadFixture(name);
      const plain = fixtureGraph(fixture);
      const lora: TrainingMethod = { kind: "lora", rank: 2, alpha: 4, targets: fixture.family.lora.defaultTargets };
      const adapted = fixtureGraph(fixture, lora);
      const rng = new Random(5);
      await compare(gpu, `${name} forward`, plain.graph, feedsFor(fixture));
      await compare(gpu, `${name} full training`, trainingOf(plain), feedsFor(fixture));
      await compare(gpu, `${name} full training, checkpointed`, trainingOf(plain), feedsFor(fixture), layerInputs(plain, fixture.family, fixture.config.dims.layers));
      const adapterFeeds = feedsFor(fixture, adapterValues(adapted, (n) => rng.normalArray(n, 0.1), false));
      await compare(gpu, `${name} LoRA training`, trainingOf(adapted), adapterFeeds);
      const scores = { forward: true, backward: true };
      if (await compare(gpu, `${name} LoRA training, attention on the score-matrix path`, trainingOf(adapted), adapterFeeds, undefined, scores)) scoresFamilies.add(name);
    }),
  );
}

for (const name of familyNames) {
  test(
    `${name}: a decode step over the KV cache plans the scratch it allocates (the decode kernels' partial sums)`,
    withGpu(async (gpu) => {
      const fixture = await loadFixture(name);
      const [batch, past] = [2, 9];
      const step = expectOk(buildCachedStep(fixture.family, fixture.config, { batch, past, fresh: 1 }));
      // every i32 input zero (token ids, GLM prefix lengths) but the key ranges, which end after the
      // new key, and the positions: the new token's is past, the largest a device cache feeds a
      // step over `past` cached positions (RoPE's table then has past + 1 rows)
      const ints: Record<string, number[]> = { [CACHE.keyRange]: [0, past + 1, 3, past + 1] };
      for (const n of topoSort(step.outputs.values())) {
        if (n.op !== "input" || n.dtype !== "i32" || ints[n.attrs.name!]) continue;
        ints[n.attrs.name!] = new Array(numel(n.shape)).fill(n.attrs.name === INPUT.positions ? past : 0);
      }
      await compare(gpu, `${name} decode step`, step, feedsOf(step, ints, 6), undefined, undefined, past + 1);
    }),
  );
}

test("the score-matrix path was planned and taken for some family", () => {
  console.log(`    score-matrix attention in: ${[...scoresFamilies].join(", ")}`);
  assert.ok(scoresFamilies.size > 0);
});

test.run();
